"""Settlement counts every cent once: stops and re-activations inside a cycle, investment changes made at a
restart, transfers still on their way, failing transfers, followers removed while the daemon was down.
`bot run` and `bot settle` as real processes; short cycles stand in for weeks."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.conftest import ETH
from tests.daemon_harness import (
    Daemon,
    bot_process,
    drop_follower,
    event_time,
    fault,
    hup,
    rewrite,
    short_cycle_accounts,
    start_daemon,
    wait_positions,
    write_config,
)
from tests.paper_harness import running_paper

D = Decimal
TRANSFER = "/sapi/v1/sub-account/universalTransfer"


async def cycle_start(seconds: int) -> float:
    """Sleeps until just after the next boundary of `seconds`-long cycles; returns that moment."""
    await asyncio.sleep(seconds - time.time() % seconds + 0.3)
    return time.time()


def cycle_index(event: dict[str, Any]) -> int:
    return int(event["cycle"].split("-")[1])


async def new_cycle(daemon: Daemon, seconds: int) -> float:
    """Sleeps until just after the next cycle boundary, then waits (bounded) for the cycle that just ended to be
    recorded: its boundary snapshot (E_end) is taken, so that what the test does next counts in the new cycle.
    Returns the boundary moment."""
    moment = await cycle_start(seconds)
    await settled(daemon, seconds, moment - seconds, event="settlement_recorded")
    return moment


async def settled(daemon: Daemon, seconds: int, moment: float, event: str = "settlement_completed") -> dict[str, Any]:
    """The first `event` of the cycle holding `moment` (bounded wait)."""
    wanted = int(moment) // seconds
    for _ in range(600):
        for seen in daemon.named(event):
            if cycle_index(seen) == wanted:
                return seen
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {event} for cycle {wanted}: {daemon.named(event)}")


def report(tmp_path: Path, cycle: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((tmp_path / "state" / "reports" / cycle / "settlement.json").read_text())
    return data


async def test_a_follower_stopped_and_reactivated_in_one_cycle_is_settled_for_both_episodes(tmp_path: Path) -> None:
    seconds = 10
    async with running_paper(short_cycle_accounts("100000", {"f1": "2000"})) as paper:
        follower = {"f1": {"investment": 1000, "total_stop_loss_pct": 30, "copy_existing": False}}
        config, env = write_config(tmp_path, paper.url, follower, cycle_seconds=seconds)
        daemon = await start_daemon(config, env)
        await paper.client("lead").create_order(ETH, "market", "buy", 20)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.2")}})
        await new_cycle(daemon, seconds)  # the price moves in the new cycle, after the last one's snapshot
        await paper.set_price("ETHUSDT", "1450")  # copy equity 690: stopped, a loss of 310
        (stopped,) = await daemon.wait_event("follower_stopped")
        rewrite(config, "total_stop_loss_pct = 30", "total_stop_loss_pct = 40")
        await hup(daemon)  # reconfigured: activated again, from 1,690 of account equity (reserve 690)
        second = (await daemon.wait_event("follower_activated", count=2))[-1]
        assert second["episode"] == "2" and second["reserve"] == "690.00000000"
        # both episodes are settled, each in the cycle it was in (one cycle, unless the machine was slow)
        first_cycle = await settled(daemon, seconds, event_time(stopped))
        second_cycle = await settled(daemon, seconds, event_time(second))
        first = next(r for r in report(tmp_path, first_cycle["cycle"])["followers"] if r["episode"] == "1")
        again = next(r for r in report(tmp_path, second_cycle["cycle"])["followers"] if r["episode"] == "2")
        assert (D(first["e_start"]), D(first["e_end"]), D(first["pnl"])) == (D(1000), D(690), D(-310))
        assert D(first["compensation"]) == D("310.00")  # the loss is not lost by the re-activation
        assert (D(again["e_start"]), D(again["e_end"]), D(again["pnl"])) == (D(1000), D(1000), D(0))
        assert await daemon.stop() == 0


async def test_an_investment_change_made_at_a_restart_is_not_the_past_cycles_pnl(tmp_path: Path) -> None:
    seconds = 6
    async with running_paper(short_cycle_accounts("10000", {"f1": "1500"})) as paper:
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}}, cycle_seconds=seconds)
        daemon = await start_daemon(config, env)
        await daemon.wait_event("follower_activated")
        assert await daemon.stop() == 0
        await asyncio.sleep(seconds + 1)  # a boundary passes while the daemon is down
        rewrite(config, "investment = 1000", "investment = 1500")  # a +500 top-up, applied at the restart
        restarted = await start_daemon(config, env)
        (late, *_) = await restarted.wait_event("settlement_completed")
        assert late["late"] is True
        changed = await restarted.wait_event("follower_investment_changed")
        assert changed[0]["flow"] == "500"
        assert await restarted.stop() == 0
        for event in restarted.named("settlement_completed"):
            for row in report(tmp_path, event["cycle"])["followers"]:
                assert D(row["pnl"]) == 0 and D(row["profit_share"]) == 0, (event["cycle"], row)


async def test_a_transfer_completed_in_a_later_cycle_is_never_pnl(tmp_path: Path) -> None:
    seconds = 6
    async with running_paper(short_cycle_accounts("10000", {"f1": "1000"})) as paper:
        config, env = write_config(
            tmp_path, paper.url, {"f1": {"investment": 1000}}, cycle_seconds=seconds, treasury=True
        )
        daemon = await start_daemon(config, env)
        await paper.client("lead").create_order(ETH, "market", "buy", 2)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.2")}})
        await fault(paper, path=TRANSFER, method="POST", kind="503", count=100_000)
        await fault(paper, path=TRANSFER, method="GET", kind="503", count=100_000)
        moment = await new_cycle(daemon, seconds)
        await paper.set_price("ETHUSDT", "2900")  # f1 loses 20: a compensation of 20.00 that cannot be paid yet
        losing = await settled(daemon, seconds, moment, "settlement_recorded")
        await daemon.wait_event("transfer_failed")
        await paper.control("DELETE", "/faults")  # paid during a later cycle
        (paid,) = await daemon.wait_event("transfer_completed", timeout=30)
        assert paid["amount"] == "20.00"
        later = await settled(daemon, seconds, event_time(paid) + 2 * seconds)  # the cycle after the one it was paid in
        assert await daemon.stop() == 0
        first = cycle_index(losing)
        for index in range(first + 1, cycle_index(later) + 1):
            (row,) = report(tmp_path, f"S{seconds}-{index}")["followers"]
            assert D(row["pnl"]) == 0 and D(row["profit_share"]) == 0, (index, row)
        assert await paper.wallet("f1") == D(1020)


async def test_failing_transfers_back_off_and_a_hopeless_one_waits_for_bot_settle_retry(tmp_path: Path) -> None:
    seconds = 6
    async with running_paper(short_cycle_accounts("10000", {"f1": "1000"})) as paper:
        config, env = write_config(
            tmp_path, paper.url, {"f1": {"investment": 1000}}, cycle_seconds=seconds, treasury=True
        )
        daemon = await start_daemon(config, env)
        await paper.client("lead").create_order(ETH, "market", "buy", 2)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.2")}})
        await fault(paper, path=TRANSFER, method="POST", kind="503", count=100_000)
        await fault(paper, path=TRANSFER, method="GET", kind="503", count=100_000)
        await new_cycle(daemon, seconds)
        await paper.set_price("ETHUSDT", "2900")  # f1 loses 20: its compensation keeps failing
        failures = await daemon.wait_event("transfer_failed", count=4, timeout=40)
        assert [f["retry_in_s"] for f in failures[:4]] == ["1.0", "2.0", "4.0", "8.0"]
        assert all(f["status"] == "pending" for f in failures)
        for before, after in itertools.pairwise(failures[:4]):
            assert event_time(after) - event_time(before) >= float(before["retry_in_s"]) - 0.05  # not once a second
        assert await daemon.stop() == 0
        code, out = await run("status", config, env)
        assert code == 0 and "transfers: 1 pending" in out

    # an email that matches no sub-account cannot succeed by trying again: failed, until `bot settle --retry`
    async with running_paper(short_cycle_accounts("10000", {"f1": "1000"})) as paper:
        (tmp_path / "b").mkdir()
        config, env = write_config(
            tmp_path / "b", paper.url, {"f1": {"investment": 1000}}, cycle_seconds=seconds, treasury=True
        )
        rewrite(config, 'email = "f1@paper.local"', 'email = "nobody@paper.local"')
        daemon = await start_daemon(config, env)
        await paper.client("lead").create_order(ETH, "market", "buy", 2)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.2")}})
        moment = await new_cycle(daemon, seconds)
        await paper.set_price("ETHUSDT", "2900")
        (failed,) = await daemon.wait_event("transfer_failed")
        assert failed["status"] == "failed" and "-12022" in failed["error"]
        await settled(daemon, seconds, moment + seconds)  # a whole cycle later: not tried again
        assert len(daemon.named("transfer_failed")) == 1
        assert await daemon.stop() == 0
        code, out = await run("status", config, env)
        assert "transfers: 1 failed" in out
        rewrite(config, 'email = "nobody@paper.local"', 'email = "f1@paper.local"')
        code, out = await run("settle", config, env, "--retry")
        assert code == 0 and "1 failed transfer(s) to try again" in out
        assert await paper.wallet("f1") == D(1020)
        cycle = cycle_index({"cycle": f"S{seconds}-{int(moment) // seconds}"})
        assert [t["status"] for t in report(tmp_path / "b", f"S{seconds}-{cycle}")["transfers"]] == ["done"]


async def run(command: str, config: Path, env: dict[str, str], *extra: str) -> tuple[int, str]:
    proc = await bot_process(command, "--config", str(config), *extra, env=env, merge_stderr=True)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_a_follower_removed_while_the_daemon_was_down_is_reported_unreachable(tmp_path: Path) -> None:
    seconds = 6
    async with running_paper(short_cycle_accounts("10000", {"f1": "1000", "f2": "1000"})) as paper:
        followers = {"f1": {"investment": 1000}, "f2": {"investment": 1000}}
        config, env = write_config(tmp_path, paper.url, followers, cycle_seconds=seconds)
        daemon = await start_daemon(config, env)
        await daemon.wait_event("follower_activated", count=2)
        assert await daemon.stop() == 0
        drop_follower(config, "f2")
        restarted = await start_daemon(config, env)
        (removed,) = restarted.named("follower_removed_unmanaged")
        assert removed["follower"] == "f2"
        (unreachable, *_) = await restarted.wait_event("settlement_follower_unreachable", timeout=30)
        assert unreachable["follower"] == "f2"
        assert await restarted.stop() == 0

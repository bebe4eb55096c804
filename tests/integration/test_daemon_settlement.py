"""SPEC section 7 by the running daemon: figures, transfers on the exchange, fees and funding from its records,
exactly once across restarts, missed cycles settled late. Short cycles (`cycle_seconds`) stand in for weeks."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.conftest import BTC, ETH
from tests.daemon_harness import (
    Daemon,
    short_cycle_accounts,
    start_daemon,
    wait_positions,
    write_config,
)
from tests.paper_harness import running_paper

D = Decimal
CYCLE = 6


async def next_cycle_start(seconds: int = CYCLE) -> None:
    """Sleeps until just after the next cycle boundary (cycles are aligned on multiples of `seconds`)."""
    now = time.time()
    await asyncio.sleep(seconds - now % seconds + 0.3)


def report(tmp_path: Path, cycle: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((tmp_path / "state" / "reports" / cycle / "settlement.json").read_text())
    return data


def rows(data: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {r["follower"]: r for r in data["followers"]}


async def next_cycle_recorded(daemon: Daemon) -> float:
    """Sleeps until the next cycle boundary, then waits (bounded) for the cycle that just ended to be recorded:
    its boundary snapshot (E_end) is taken, so that what the test does next counts in the new cycle. Returns
    the moment after."""
    await next_cycle_start()
    moment = time.time()
    ended = int(moment) // CYCLE - 1
    for _ in range(400):
        if any(int(e["cycle"].split("-")[1]) == ended for e in daemon.named("settlement_recorded")):
            return moment
        await asyncio.sleep(0.05)
    raise AssertionError(f"cycle {ended} never recorded: {daemon.named('settlement_recorded')}")


async def settled_after(daemon: Daemon, moment: float, event_name: str = "settlement_completed") -> dict[str, Any]:
    """The first settlement_completed (or `event_name`) for a cycle that started at or after `moment`."""
    for _ in range(400):
        for event in daemon.named(event_name):
            index = int(event["cycle"].split("-")[1])
            if index * CYCLE >= int(moment) - 1:
                return event
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {event_name} after {moment}: {daemon.named(event_name)}")


async def test_a_losing_and_a_winning_follower_with_transfers_on_the_exchange(tmp_path: Path) -> None:
    async with running_paper(short_cycle_accounts("10000", {"win": "1000", "lose": "2000"})) as paper:
        followers = {
            "win": {"investment": 1000, "symbols": ["ETHUSDT"]},
            "lose": {"investment": 2000, "symbols": ["BTCUSDT"]},
        }
        config, env = write_config(tmp_path, paper.url, followers, cycle_seconds=CYCLE, treasury=True)
        daemon = await start_daemon(config, env)
        lead = paper.client("lead")
        await lead.create_order(ETH, "market", "buy", 2)
        await lead.create_order(BTC, "market", "buy", 0.02)
        await wait_positions(paper, {"win": {"ETHUSDT": D("0.2")}, "lose": {"BTCUSDT": D("0.004")}})
        moment = await next_cycle_recorded(daemon)
        await paper.set_price("ETHUSDT", "3300")  # win: 0.2 · 300 = +60
        await paper.set_price("BTCUSDT", "45000")  # lose: 0.004 · -5,000 = -20
        event = await settled_after(daemon, moment)
        await daemon.wait_event("transfer_completed", count=2)
        data = report(tmp_path, event["cycle"])
        win, lose = rows(data)["win"], rows(data)["lose"]
        assert (D(win["e_start"]), D(win["e_end"]), D(win["pnl"])) == (D(1000), D(1060), D(60))
        assert (D(win["profit_share"]), D(win["compensation"])) == (D("42.00"), D(0))  # 0.70 of 60
        assert (D(lose["e_start"]), D(lose["e_end"]), D(lose["pnl"])) == (D(2000), D(1980), D(-20))
        assert (D(lose["compensation"]), D(lose["profit_share"])) == (D("20.00"), D(0))
        assert D(data["totals"]["compensation"]) == D(20) and D(data["totals"]["profit_share"]) == D(42)
        before = D(data["lead"]["collateral_before"])
        assert D(data["lead"]["collateral_after"]) == before - 20 + 42
        assert {t["status"] for t in data["transfers"]} == {"done"}
        # the exchange's balances moved by exactly the transfers (no fees in this test; positions still open)
        assert await paper.wallet("win") == D(1000) - D(42)
        assert await paper.wallet("lose") == D(2000) + D(20)
        assert await paper.wallet("lead") == D(10000) + D(42) - D(20)
        markdown = (tmp_path / "state" / "reports" / event["cycle"] / "settlement.md").read_text()
        assert "| win | 1000.00 | 1060.00 |" in markdown and "| lose | 2000.00 | 1980.00 |" in markdown
        csv_text = (tmp_path / "state" / "reports" / event["cycle"] / "settlement.csv").read_text()
        assert csv_text.splitlines()[0].startswith("follower,e_start,e_end,flows,fees,funding,pnl")
        assert await daemon.stop() == 0


async def test_fees_and_funding_come_from_the_exchanges_records(tmp_path: Path) -> None:
    async with running_paper(short_cycle_accounts("10000", {"f1": "1000"}, commission="0.0005")) as paper:
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}}, cycle_seconds=CYCLE)
        daemon = await start_daemon(config, env)
        moment = await next_cycle_recorded(daemon)
        await paper.client("lead").create_order(ETH, "market", "buy", 2)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.2")}})  # 600 notional: 0.30 commission
        await paper.control("POST", "/funding", {"rate": "0.0001"})  # the long pays 0.06
        event = await settled_after(daemon, moment)
        row = rows(report(tmp_path, event["cycle"]))["f1"]
        assert (D(row["fees"]), D(row["funding"])) == (D("0.30"), D("-0.06"))
        assert D(row["pnl"]) == D("-0.36") and D(row["compensation"]) == D("0.36")
        assert D(row["fee_rebate"]) == D("0.21")  # 0.70 of the fees, owed to the lead by the operator
        assert report(tmp_path, event["cycle"])["transfers"][0]["status"] == "due"  # no treasury configured
        assert await daemon.stop() == 0


async def test_a_restart_between_recording_and_transfer_moves_money_once(tmp_path: Path) -> None:
    async with running_paper(short_cycle_accounts("10000", {"f1": "1000"})) as paper:
        config, env = write_config(
            tmp_path, paper.url, {"f1": {"investment": 1000}}, cycle_seconds=CYCLE, treasury=True
        )
        path = "/sapi/v1/sub-account/universalTransfer"
        daemon = await start_daemon(config, env)
        await paper.client("lead").create_order(ETH, "market", "buy", 2)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.2")}})
        # the first attempt executes but its answer is lost; every later one fails until the restart
        await paper.control("POST", "/faults", {"path": path, "method": "POST", "kind": "drop", "execute": True})
        await paper.control("POST", "/faults", {"path": path, "method": "POST", "kind": "503", "count": 1000})
        await paper.control("POST", "/faults", {"path": path, "method": "GET", "kind": "503", "count": 1000})
        moment = await next_cycle_recorded(daemon)
        await paper.set_price("ETHUSDT", "2900")  # f1 loses 20: compensation 20.00
        await settled_after(daemon, moment, "settlement_recorded")  # completed only once its transfer is done
        await daemon.wait_event("transfer_failed")
        daemon.proc.send_signal(signal.SIGKILL)
        await daemon.kill()
        await paper.control("DELETE", "/faults")
        restarted = await start_daemon(config, env)
        (done,) = await restarted.wait_event("transfer_completed")
        assert done["amount"] == "20.00"
        history = await paper.client("master").sapiGetSubAccountUniversalTransfer({"clientTranId": done["transfer_id"]})
        assert history["totalCount"] == 1  # executed once, found by its id instead of being sent again
        assert await paper.wallet("f1") == D(1020) and await paper.wallet("lead") == D(9980)
        # the cycle is completed by the daemon that finished its transfer, and its reports say so
        completed = await restarted.wait_event("settlement_completed")
        (cycle,) = [e for e in completed if e["transfers_done"] == "1"]
        assert cycle["transfers_pending"] == "0" and cycle["transfers_failed"] == "0"
        assert [t["status"] for t in report(tmp_path, cycle["cycle"])["transfers"]] == ["done"]
        assert await restarted.stop() == 0


async def test_the_daemon_down_across_a_boundary_settles_late_at_its_next_start(tmp_path: Path) -> None:
    async with running_paper(short_cycle_accounts("10000", {"f1": "1000"})) as paper:
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}}, cycle_seconds=CYCLE)
        daemon = await start_daemon(config, env)
        await paper.client("lead").create_order(ETH, "market", "buy", 2)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.2")}})
        assert await daemon.stop() == 0
        settled_before = {e["cycle"] for e in daemon.named("settlement_completed")}
        await paper.set_price("ETHUSDT", "3100")  # f1 gains 20 while the daemon is down
        await asyncio.sleep(CYCLE + 1)  # at least one boundary passes
        restarted = await start_daemon(config, env)
        late = await restarted.wait_event("settlement_completed")
        assert late[0]["late"] is True
        await asyncio.sleep(1)
        assert await restarted.stop() == 0
        cycles = [e["cycle"] for e in restarted.named("settlement_completed")]
        assert len(cycles) == len(set(cycles)) and not set(cycles) & settled_before  # nothing settled twice
        total_pnl = D(0)
        for cycle in settled_before | set(cycles):
            (row,) = report(tmp_path, cycle)["followers"]
            total_pnl += D(row["pnl"])
        assert total_pnl == D(20)  # the gain is counted once across the cycles
        code, out = await bot_settle(config, env)
        assert code == 0 and all(c in out for c in cycles)  # `bot settle` is idempotent and rewrites reports


async def bot_settle(config: Path, env: dict[str, str]) -> tuple[int, str]:
    from tests.daemon_harness import bot_process

    proc = await bot_process("settle", "--config", str(config), env=env)
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_bot_settle_refuses_a_malformed_or_unfinished_cycle(tmp_path: Path) -> None:
    from tests.daemon_harness import bot_process

    config, env = write_config(tmp_path, "http://127.0.0.1:9", {"f1": {"investment": 1000}})
    for cycle, message in (
        ("nonsense", "is not a cycle id"),
        ("2999-W01", "is not over"),
        ("S0-1", "is not a cycle id"),
    ):
        proc = await bot_process("settle", "--config", str(config), "--cycle", cycle, env=env)
        _, err = await proc.communicate()
        assert proc.returncode == 2 and message in err.decode()

"""Crashes, signals, unknown outcomes, failing keys and bad input, with `bot run` as a real process."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sqlite3
from decimal import Decimal
from pathlib import Path

from tests.conftest import ETH, SOL
from tests.daemon_harness import (
    WITHIN_THE_MINUTE_S,
    bot_process,
    client_ids_are_unique,
    paper_accounts,
    positions,
    slow_orders,
    start_daemon,
    wait_positions,
    write_config,
)
from tests.paper_harness import running_paper

D = Decimal


async def test_bad_config_exits_2_naming_the_field_and_trades_nothing(tmp_path: Path) -> None:
    async with running_paper(paper_accounts("10000", {"f1": "1000"})) as paper:
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": -5, "max_slippage_pct": "lots"}})
        proc = await bot_process("run", "--config", str(config), env=env)
        _, stderr = await proc.communicate()
        assert proc.returncode == 2
        text = stderr.decode()
        assert "followers.0.investment" in text and "followers.0.max_slippage_pct" in text
        assert "f1-secret-000001" not in text
        assert (await paper.state("f1"))["orders"] == [] and (await paper.state("lead"))["orders"] == []


async def test_a_symbol_that_is_no_market_id_of_the_exchange_exits_2_naming_it(tmp_path: Path) -> None:
    async with running_paper(paper_accounts("10000", {"f1": "1000"})) as paper:
        followers = {"f1": {"investment": 1000, "symbols": ["ETHUSDT", "BTC/USDT:USDT"]}}
        config, env = write_config(tmp_path, paper.url, followers)
        daemon = await start_daemon(config, env, started=False)
        assert await asyncio.wait_for(daemon.proc.wait(), 30) == 2
        await daemon.stop()
        (failed,) = daemon.named("startup_failed")
        assert failed["problems"][0].startswith("followers.0.symbols.1: 'BTC/USDT:USDT' is not a market id")
        assert (await paper.state("f1"))["orders"] == []


async def test_unreachable_account_at_startup_exits_non_zero_naming_it(tmp_path: Path) -> None:
    async with running_paper(paper_accounts("10000", {"f1": "1000", "f2": "1000"})) as paper:
        await paper.control("POST", "/accounts/f2/key", {"enabled": False})
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}, "f2": {"investment": 1000}})
        daemon = await start_daemon(config, env, started=False)
        code = await asyncio.wait_for(daemon.proc.wait(), 30)
        await daemon.stop()
        assert code == 1
        (failure,) = daemon.named("startup_account_unreachable")
        assert failure["account"] == "f2" and "AuthenticationError" in failure["error"]
        assert not daemon.named("daemon_started")


async def test_unknown_outcome_is_resolved_by_lookup_without_a_second_order(tmp_path: Path) -> None:
    async with running_paper(paper_accounts("10000", {"f1": "1000"})) as paper:
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}}, bot={"request_timeout_ms": 400})
        daemon = await start_daemon(config, env)
        # the follower's next order executes, but its answer comes after the client's timeout
        await paper.control(
            "POST",
            "/faults",
            {"path": "/fapi/v1/order", "method": "POST", "account": "f1", "kind": "delay", "delay_s": 1.2},
        )
        await paper.client("lead").create_order(ETH, "market", "buy", 2)
        (unknown,) = await daemon.wait_event("order_outcome_unknown")
        (filled,) = await daemon.wait_event("follower_order_filled")
        assert unknown["client_order_id"] == filled["client_order_id"]
        assert await positions(paper, "f1") == {"ETHUSDT": D("0.2")}
        assert await client_ids_are_unique(paper, "f1") == 1  # one order, never a second
        assert await daemon.stop() == 0


async def test_a_follower_whose_key_stops_working_fails_alone(tmp_path: Path) -> None:
    async with running_paper(paper_accounts("10000", {"good": "1000", "bad": "2000"})) as paper:
        config, env = write_config(tmp_path, paper.url, {"good": {"investment": 1000}, "bad": {"investment": 2000}})
        daemon = await start_daemon(config, env)
        await paper.control("POST", "/accounts/bad/key", {"enabled": False})
        lead = paper.client("lead")
        await lead.create_order(ETH, "market", "buy", 2)
        await wait_positions(paper, {"good": {"ETHUSDT": D("0.2")}})
        await lead.create_order(SOL, "market", "sell", 30)
        await wait_positions(paper, {"good": {"ETHUSDT": D("0.2"), "SOLUSDT": D("-3")}})
        failures = await daemon.wait_event("follower_account_failed")
        assert {f["follower"] for f in failures} == {"bad"}
        assert await positions(paper, "bad") == {}
        await paper.control("POST", "/accounts/bad/key", {"enabled": True})  # the key works again: it catches up
        await wait_positions(paper, {"bad": {"ETHUSDT": D("0.4"), "SOLUSDT": D("-6")}}, timeout=40)
        assert await daemon.stop() == 0


async def test_sigterm_during_a_fan_out_exits_0_and_a_restart_completes_the_rest(tmp_path: Path) -> None:
    followers = {f"f{i}": str(1000 * i) for i in range(1, 4)}
    async with running_paper(paper_accounts("10000", followers)) as paper:
        config, env = write_config(tmp_path, paper.url, {n: {"investment": int(u)} for n, u in followers.items()})
        await slow_orders(paper, followers, delay_s=0.6, count=100)  # every follower order answers late
        daemon = await start_daemon(config, env)
        lead = paper.client("lead")
        for qty in (1, 2, 3):  # three lead changes, seen one by one
            await lead.create_order(ETH, "market", "buy", qty)
            await daemon.wait_event("lead_position_changed", count=qty)
        await daemon.wait_event("follower_order_submitted")
        assert await daemon.stop() == 0  # SIGTERM in the middle of the fan-out
        assert daemon.named("daemon_stopped")
        restarted = await start_daemon(config, env)
        await wait_positions(
            paper, {"f1": {"ETHUSDT": D("0.6")}, "f2": {"ETHUSDT": D("1.2")}, "f3": {"ETHUSDT": D("1.8")}}, timeout=40
        )
        assert await restarted.stop() == 0
        for name in followers:
            assert await client_ids_are_unique(paper, name) == 3


async def test_sigkill_mid_fan_out_in_a_loop_never_duplicates_and_ends_exact(tmp_path: Path) -> None:
    """Five followers; the daemon is killed at different points of fan-outs, restarted, killed again."""
    followers = {f"f{i}": str(1000 * i) for i in range(1, 6)}  # r = 0.1 .. 0.5: exact on ETH's 0.001 step
    rng = random.Random(11)
    async with running_paper(paper_accounts("10000", followers)) as paper:
        config, env = write_config(tmp_path, paper.url, {n: {"investment": int(u)} for n, u in followers.items()})
        await slow_orders(paper, followers, delay_s=0.15, count=1000)
        lead = paper.client("lead")
        lead_eth = D(0)
        for round_ in range(5):
            daemon = await start_daemon(config, env)
            side, qty = ("buy", 2) if round_ % 2 == 0 else ("sell", 1)
            await lead.create_order(ETH, "market", side, qty)
            lead_eth += qty if side == "buy" else -qty
            submitted = len(daemon.named("follower_order_submitted"))
            await daemon.wait_event("follower_order_submitted", count=submitted + 1)
            await asyncio.sleep(rng.uniform(0.0, 0.5))  # somewhere in the middle of the fan-out
            daemon.proc.send_signal(signal.SIGKILL)
            await daemon.kill()
        final = await start_daemon(config, env)
        expected = {n: {"ETHUSDT": lead_eth * D(u) / D(10000)} for n, u in followers.items()}
        await wait_positions(paper, expected, timeout=60)
        assert await final.stop() == 0
        for name in followers:
            await client_ids_are_unique(paper, name)


async def test_a_second_daemon_on_the_same_state_refuses_to_start(tmp_path: Path) -> None:
    async with running_paper(paper_accounts("10000", {"f1": "1000"})) as paper:
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}})
        first = await start_daemon(config, env)
        second = await start_daemon(config, env, started=False)
        assert await asyncio.wait_for(second.proc.wait(), 30) == 1
        await second.stop()
        assert second.named("state_locked") and not second.named("daemon_started")
        await paper.client("lead").create_order(ETH, "market", "buy", 2)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.2")}})
        assert await first.stop() == 0
        assert await client_ids_are_unique(paper, "f1") == 1


async def test_killed_between_two_chunks_of_a_fan_out_each_follower_is_copied_once(tmp_path: Path) -> None:
    """Twenty followers: a fan-out journals and sends its first chunk (16 plans), then the daemon dies (SIGKILL at
    the crash point after that chunk) before the others have a plan. The restart looks the first chunk's orders up
    by client order id (their answers were still on their way) and copies the rest: one order per follower."""
    followers = {f"f{i:02d}": str(1000 + 100 * i) for i in range(20)}  # 2 ETH x r: exact on ETH's step
    async with running_paper(paper_accounts("10000", followers)) as paper:
        config, env = write_config(tmp_path, paper.url, {n: {"investment": int(u)} for n, u in followers.items()})
        await slow_orders(paper, followers, delay_s=0.3, count=5)  # the first chunk's answers still out
        daemon = await start_daemon(config, {**env, "COPYBOT_CRASH_AT": "fan_out_chunk"})
        await paper.client("lead").create_order(ETH, "market", "buy", 2)
        assert await asyncio.wait_for(daemon.proc.wait(), 60) == -signal.SIGKILL
        await daemon.kill()
        with contextlib.closing(sqlite3.connect(tmp_path / "state" / "copybot.sqlite3")) as db:
            planned = {name for (name,) in db.execute("SELECT follower FROM plans WHERE kind = 'c'")}
        assert 0 < len(planned) < len(followers), planned  # killed between two chunks: some planned, not all
        restarted = await start_daemon(config, env)
        expected = {n: {"ETHUSDT": D(2) * D(u) / D(10000)} for n, u in followers.items()}
        await wait_positions(paper, expected, timeout=60)
        assert await restarted.stop() == 0
        for name in followers:
            assert await client_ids_are_unique(paper, name) == 1, name


async def test_sigterm_when_idle_ends_every_task_by_itself_none_is_cancelled(tmp_path: Path) -> None:
    """Every task watches the stop: none waits out the grace period to be cancelled (a fan-out waiting for the
    next lead change once did, and every stop took the whole `shutdown_grace_s`)."""
    async with running_paper(paper_accounts("10000", {"f1": "1000"})) as paper:
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}}, bot={"shutdown_grace_s": 60})
        daemon = await start_daemon(config, env)
        await paper.client("lead").create_order(ETH, "market", "buy", 1)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.1")}})
        assert await daemon.stop(timeout=50) == 0
        assert daemon.named("daemon_stopped") and not daemon.named("shutdown_task_cancelled")


async def test_a_key_revoked_while_down_fails_its_follower_alone_at_the_restart(tmp_path: Path) -> None:
    """A restart checks no key of a follower already active (500 of them would wait for their paced checks before
    anything is copied): the daemon starts, the follower whose key was revoked meanwhile fails alone at its first
    account read, the others copy."""
    async with running_paper(paper_accounts("10000", {"f1": "1000", "f2": "1000"})) as paper:
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}, "f2": {"investment": 1000}})
        first = await start_daemon(config, env)
        await first.wait_event("follower_activated", count=2)
        assert await first.stop() == 0
        await paper.control("POST", "/accounts/f2/key", {"enabled": False})
        restarted = await start_daemon(config, env)
        assert not restarted.named("startup_account_unreachable")
        # its first account read is its first reconciliation pass, which the budget paces: early in a minute in
        # which the first run's reads were counted, it waits for the minute's paced line (SPEC 12)
        (failed, *_) = await restarted.wait_event("follower_account_failed", timeout=WITHIN_THE_MINUTE_S)
        assert failed["follower"] == "f2"
        await paper.client("lead").create_order(ETH, "market", "buy", 1)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.1")}, "f2": {}})
        assert await restarted.stop() == 0


async def test_a_fan_out_whose_mark_read_fails_leaves_the_change_to_the_workers(tmp_path: Path) -> None:
    """The plan's mark (read by REST once per fan-out) cannot be read: the fan-out gives up before any order
    (`fan_out_failed`), the daemon goes on, and each follower's worker copies the change once the read passes."""
    async with running_paper(paper_accounts("10000", {"f1": "1000", "f2": "2000"})) as paper:
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}, "f2": {"investment": 2000}})
        daemon = await start_daemon(config, env)
        fault = {"path": "/fapi/v1/premiumIndex", "method": "GET", "kind": "503", "count": 5}  # every retry of one
        await paper.control("POST", "/faults", fault)
        await paper.client("lead").create_order(ETH, "market", "buy", 1)
        (failed,) = await daemon.wait_event("fan_out_failed")
        assert failed["lead_change"] == "1" and "503" in failed["error"]
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.1")}, "f2": {"ETHUSDT": D("0.2")}}, timeout=30)
        assert not daemon.named("task_failed")
        assert await daemon.stop() == 0
        for name in ("f1", "f2"):
            assert await client_ids_are_unique(paper, name) == 1

"""Reconfiguration and restarts: a new lead starts from nothing, a re-activated follower copies again, a reload
applies every setting (or refuses, naming what needs a restart), and a task that dies stops the daemon."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
from decimal import Decimal
from pathlib import Path

from tests.conftest import BTC, ETH
from tests.daemon_harness import (
    WITHIN_THE_MINUTE_S,
    Daemon,
    follower_states,
    hup,
    paper_accounts,
    positions,
    rewrite,
    start_daemon,
    wait_positions,
    write_config,
)
from tests.paper_harness import running_paper

D = Decimal


def replace_lead(config: Path, name: str) -> None:
    upper = name.upper()
    rewrite(config, '[lead]\nname = "lead"', f'[lead]\nname = "{name}"')
    rewrite(config, '"LEAD_API_KEY"', f'"{upper}_API_KEY"')
    rewrite(config, '"LEAD_API_SECRET"', f'"{upper}_API_SECRET"')
    rewrite(config, 'email = "lead@paper.local"', f'email = "{name}@paper.local"')


async def test_a_new_lead_starts_from_its_own_positions_and_equity(tmp_path: Path) -> None:
    accounts = paper_accounts("100000", {"lead2": "12000", "alice": "1000", "bob": "60000"})
    async with running_paper(accounts) as paper:
        await paper.client("lead").create_order(BTC, "market", "buy", 1)  # held before the first start
        followers = {"alice": {"investment": 1000}, "bob": {"investment": 60000}}
        config, env = write_config(tmp_path, paper.url, followers)
        env |= {"LEAD2_API_KEY": "lead2-key-000001", "LEAD2_API_SECRET": "lead2-secret-000001"}
        daemon = await start_daemon(config, env)
        await wait_positions(paper, {"alice": {"BTCUSDT": D("0.01")}, "bob": {"BTCUSDT": D("0.6")}})
        replace_lead(config, "lead2")
        await daemon.wait_event("reconcile_completed", count=2, timeout=WITHIN_THE_MINUTE_S)
        daemon.proc.send_signal(signal.SIGHUP)
        (gone,) = await daemon.wait_event("lead_gone")
        assert gone["reason"] == "lead replaced in the configuration"
        assert await asyncio.wait_for(daemon.proc.wait(), 30) == 0
        await daemon.stop()
        await wait_positions(paper, {"alice": {}, "bob": {}})
        restarted = await start_daemon(config, env)
        (baseline,) = restarted.named("lead_baseline_recorded")
        assert baseline["lead_equity"] == "12000.00000000" and baseline["positions"] == {}
        # capacity is the new lead's: 12,000 / 0.20 = 60,000, so bob's 60,000 waits while alice's 1,000 fits
        (waiting,) = await restarted.wait_event("follower_pending_capacity")
        assert waiting["follower"] == "bob" and waiting["lead_equity"] == "12000.00000000"
        await paper.client("lead2").create_order(ETH, "market", "buy", 1)
        await wait_positions(paper, {"alice": {"ETHUSDT": D("0.083")}, "bob": {}})  # no BTC of the old lead
        assert follower_states(tmp_path) == {"alice": "active", "bob": "pending_capacity"}
        assert await restarted.stop() == 0


async def test_a_follower_copying_existing_positions_copies_again_after_a_reactivation(tmp_path: Path) -> None:
    async with running_paper(paper_accounts("10000", {"f1": "2000"})) as paper:
        lead = paper.client("lead")
        await lead.create_order(ETH, "market", "buy", 2)  # the lead's position before the first start
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000, "total_stop_loss_pct": 30}})
        daemon = await start_daemon(config, env)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.2")}})  # copy_existing
        await paper.set_price("ETHUSDT", "1400")
        await daemon.wait_event("follower_stopped")
        await paper.set_price("ETHUSDT", "3000")
        rewrite(config, "total_stop_loss_pct = 30", "total_stop_loss_pct = 40")
        await hup(daemon)
        await daemon.wait_event("follower_activated", count=2)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.2")}})  # copied the existing position again
        await lead.create_order(ETH, "market", "buy", 1)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.3")}})  # and its worker is alive
        assert await daemon.stop() == 0


async def test_a_reload_applies_every_setting_or_names_what_needs_a_restart(tmp_path: Path) -> None:
    seconds = 6
    async with running_paper(paper_accounts("10000", {"f1": "1000", "f2": "1000"})) as paper:
        config, env = write_config(
            tmp_path, paper.url, {"f1": {"investment": 1000}}, cycle_seconds=seconds, treasury=True
        )
        config.write_text(config.read_text() + "\n[protection]\nmax_leverage = 5\n")
        env |= {"F2_API_KEY": "f2-key-000001", "F2_API_SECRET": "f2-secret-000001"}
        daemon = await start_daemon(config, env)
        rewrite(config, "poll_interval_s = 0.2", "poll_interval_s = 0.3")
        daemon.proc.send_signal(signal.SIGHUP)
        (refused,) = await daemon.wait_event("config_reload_failed")
        assert refused["problems"] == ["bot: changes need a restart"]
        rewrite(config, "poll_interval_s = 0.3", "poll_interval_s = 0.2")
        rewrite(config, "max_leverage = 5", "max_leverage = 2")
        f2 = (
            '\n[[followers]]\nname = "f2"\nenvironment = "paper"\n'
            f'api_url = "{paper.url}"\napi_key_env = "F2_API_KEY"\napi_secret_env = "F2_API_SECRET"\n'
            'email = "f2@paper.local"\ninvestment = 1000\n'
        )
        text = config.read_text()
        config.write_text(text.replace("\n[treasury]", f2 + "\n[treasury]"))
        await hup(daemon)
        await daemon.wait_event("follower_activated", count=2)
        # the lead at 3x: each follower wants 3,000 of notional, the reloaded cap allows 2x = 2,000
        await paper.client("lead").create_order(BTC, "market", "buy", 0.6)
        await wait_positions(paper, {"f1": {"BTCUSDT": D("0.04")}, "f2": {"BTCUSDT": D("0.04")}})
        assert (await paper.state("f2"))["leverage"]["BTCUSDT"] == 2  # and the exchange's leverage set to it
        # the follower added by the reload is settled, and its compensation executed by the treasury
        await paper.set_price("BTCUSDT", "49000")
        done = await daemon.wait_event("transfer_completed", count=2, timeout=30)
        assert {e["follower"] for e in done} == {"f1", "f2"}
        assert not daemon.named("task_failed")
        assert await daemon.stop() == 0


async def test_a_task_that_dies_is_logged_with_its_traceback_and_stops_the_daemon(tmp_path: Path) -> None:
    async with running_paper(paper_accounts("10000", {"f1": "1000"})) as paper:
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}})
        daemon: Daemon = await start_daemon(config, env)
        await daemon.wait_event("reconcile_completed", timeout=WITHIN_THE_MINUTE_S)
        with contextlib.closing(sqlite3.connect(tmp_path / "state" / "copybot.sqlite3", timeout=30)) as db:
            db.execute("BEGIN EXCLUSIVE")  # the disk is "locked": the daemon's next write fails after 5 s
            await paper.client("lead").create_order(ETH, "market", "buy", 2)
            (failed, *_) = await daemon.wait_event("task_failed", timeout=40)
            db.execute("ROLLBACK")
        assert "database is locked" in failed["error"] and "Traceback" in failed.get("exception", "")
        assert await asyncio.wait_for(daemon.proc.wait(), 30) == 4
        await daemon.stop()
        assert await positions(paper, "f1") == {}

"""`bot status`, `bot check-config`, `bot demo`, heartbeats, and secrets kept out of every output."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

from tests.conftest import ETH
from tests.daemon_harness import bot_process, paper_accounts, start_daemon, wait_positions, write_config
from tests.paper_harness import running_paper

D = Decimal


async def run_bot(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> tuple[int, str, str]:
    proc = await bot_process(*args, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_status_heartbeat_and_no_secret_anywhere(tmp_path: Path) -> None:
    async with running_paper(paper_accounts("10000", {"f1": "1000", "f2": "3000"})) as paper:
        config, env = write_config(
            tmp_path,
            paper.url,
            {"f1": {"investment": 1000}, "f2": {"investment": 2000}},
            bot={"heartbeat_interval_s": 0.3},
        )
        daemon = await start_daemon(config, env)
        await paper.client("lead").create_order(ETH, "market", "buy", 2)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.2")}, "f2": {"ETHUSDT": D("0.4")}})
        beats = await daemon.wait_event("heartbeat", count=2)
        assert beats[-1]["follower_lag"] == {"f1": 0, "f2": 0} and beats[-1]["last_lead_change"] == "1"
        assert await daemon.stop() == 0
        code, out, err = await run_bot("status", "--config", str(config), env=env)
        assert code == 0, err
        lines = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith(("f1 ", "f2 "))}
        # state, copy equity, PnL, stop-loss distance (copy equity - 70 % of the investment), symbol, position
        assert lines["f1"][1:7] == ["active", "1000.00", "+0.00", "300.00", "ETHUSDT", "0.2"]
        assert lines["f2"][1:7] == ["active", "2000.00", "+0.00", "600.00", "ETHUSDT", "0.4"]  # reserve 1,000 aside
        assert "eligible: yes" in out and "capacity: 50000.00" in out and "utilization: 6.0%" in out
        assert "request weight: 127.0.0.1:" in out and "reconciliation every 3600.0s" in out
        code, out, _ = await run_bot("check-config", "--config", str(config), env=env)
        assert code == 0 and "f2: investment 2000 USDT" in out
        everything = "\n".join(str(e) for e in daemon.events) + out
        for name in ("lead", "f1", "f2"):
            assert f"{name}-secret-000001" not in everything and f"{name}-key-000001" not in everything


def logged_events(log: Path) -> set[str]:
    """The event names of a JSON log, every line parsed (one object per line)."""
    return {json.loads(line)["event"] for line in log.read_text().splitlines()}


async def test_demo_runs_with_no_keys_and_prints_its_table(tmp_path: Path) -> None:
    code, out, err = await run_bot("demo", "--seconds", "12", "--state-dir", str(tmp_path / "demo"), timeout=180)
    assert code == 0, err
    assert "lead open" in out and "price shock" in out and "lead deposits" in out
    table = [line.split() for line in out.splitlines() if line.startswith(("alice ", "bob ", "carol ", "dave "))]
    states = {row[0]: row[1] for row in table}
    # bob's tight stop loss meets the shock; dave waited on capacity and is active once the lead grew
    assert states == {"alice": "active", "bob": "stopped_loss", "carol": "active", "dave": "active"}
    assert (tmp_path / "demo" / "bot.log").stat().st_size > 0
    assert f"state (SQLite):    {tmp_path / 'demo' / 'copybot.sqlite3'}" in out
    events = logged_events(tmp_path / "demo" / "bot.log")
    assert {"follower_pending_capacity", "follower_stop_loss_triggered"} <= events
    # short settlement cycles: a losing cycle compensated by the lead, a winning one sharing profit
    settled = [line.split() for line in out.splitlines() if line.startswith("  S") and "compensation" in line]
    assert any(Decimal(row[2].rstrip(",")) > 0 for row in settled)
    assert any(Decimal(row[5]) > 0 for row in settled)
    assert "| transfer id | kind | from | to | amount | status | attempts |" in out and "| done |" in out


async def test_spot_demo_runs_with_no_keys_and_prints_holdings(tmp_path: Path) -> None:
    state = tmp_path / "spot-demo"
    code, out, err = await run_bot(
        "demo", "--market", "spot", "--seconds", "16", "--state-dir", str(state), timeout=180
    )
    assert code == 0, err
    assert "paper exchange (Binance spot)" in out and "price fall" in out
    header = next(line.split() for line in out.splitlines() if line.startswith("follower "))
    assert "holding" in header and "dust" in header and "position" not in header
    table = [line.split() for line in out.splitlines() if line.startswith(("alice ", "bob ", "carol "))]
    assert {row[0]: row[1] for row in table} == {"alice": "active", "bob": "stopped_loss", "carol": "active"}
    events = logged_events(state / "bot.log")
    assert {"follower_funds_released", "follower_stop_loss_triggered"} <= events
    settled = [line.split() for line in out.splitlines() if line.startswith("  S") and "compensation" in line]
    assert settled and "| done |" in out

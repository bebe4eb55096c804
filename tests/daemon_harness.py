"""Runs `bot run` as a real process against the paper exchange served by the test's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.paper_harness import Paper

ROOT = Path(__file__).resolve().parents[1]
# a reconciliation pass the request budget defers (the minute's paced line, SPEC 12) goes within the calendar
# minute: a test waiting for one waits that long at most, however busy the machine or the minute
WITHIN_THE_MINUTE_S = 75


def paper_accounts(lead_usdt: str, followers: dict[str, str], commission: str = "0") -> dict[str, Any]:
    """An accounts file: the lead and followers with their USDT, fixed prices, zero fees by default, and
    Binance's limits (the paper exchange's default)."""
    names = {"lead": lead_usdt, **followers}
    return {
        "accounts": [
            {
                "name": n,
                "api_key": f"{n}-key-000001",
                "api_secret": f"{n}-secret-000001",
                "email": f"{n}@paper.local",
                "usdt": usdt,
            }
            for n, usdt in names.items()
        ],
        "master": {"api_key": "master-key-000001", "api_secret": "master-secret-000001"},
        "prices": {"BTCUSDT": "50000", "ETHUSDT": "3000", "SOLUSDT": "150"},
        "commission": {"maker": commission, "taker": commission},
    }


def spot_accounts(
    lead: dict[str, str], followers: dict[str, dict[str, str]], commission: str | None = None
) -> dict[str, Any]:
    """An accounts file for a spot daemon: each account's spot wallet (asset -> amount), Binance spot's fees
    (0.1 %, the paper exchange's default) unless `commission` says otherwise, fixed prices, Binance's limits."""
    accounts = paper_accounts("0", dict.fromkeys(followers, "0"))
    wallets = {"lead": lead, **followers}
    for account in accounts["accounts"]:
        account["spot"] = wallets[account["name"]]
    if commission is not None:
        accounts["spot_commission"] = {"maker": commission, "taker": commission}
    return accounts


def short_cycle_accounts(lead_usdt: str, followers: dict[str, str], commission: str = "0") -> dict[str, Any]:
    """`paper_accounts` for settlement cycles of a few seconds, which stand in for weeks: the per-IP weight limit
    tenfold, since a week's settlement reads (income, weight 30 a follower) fit Binance's budget with days to
    spare, and a six-second cycle's do not (the same choice as `bot demo`)."""
    accounts = paper_accounts(lead_usdt, followers, commission)
    accounts["limits"] = {"request_weight_per_minute": 24000}
    return accounts


def write_config(
    directory: Path,
    url: str,
    followers: dict[str, dict[str, Any]],
    bot: dict[str, Any] | None = None,
    cycle_seconds: int | None = None,
    treasury: bool = False,
    protection: dict[str, Any] | None = None,
) -> tuple[Path, dict[str, str]]:
    """A TOML config for `bot run` and the environment holding its secrets."""
    bot_opts = {
        "state_dir": str(directory / "state"),
        "poll_interval_s": 0.2,
        "reconcile_interval_s": 3600,
        "heartbeat_interval_s": 3600,
        "shutdown_grace_s": 5,
        "log_level": "debug",  # an order leaving (`follower_order_submitted`) is a point the tests act at
        **(bot or {}),
    }
    env = {}
    lines = ["[bot]"] + [f"{k} = {json.dumps(v)}" for k, v in bot_opts.items()]
    for section, name, extra in [("[lead]", "lead", {}), *(("[[followers]]", n, o) for n, o in followers.items())]:
        upper = name.upper()
        env[f"{upper}_API_KEY"] = f"{name}-key-000001"
        env[f"{upper}_API_SECRET"] = f"{name}-secret-000001"
        lines += [
            "",
            section,
            f'name = "{name}"',
            'environment = "paper"',
            f'api_url = "{url}"',
            f'api_key_env = "{upper}_API_KEY"',
            f'api_secret_env = "{upper}_API_SECRET"',
        ]
        lines.append(f'email = "{name}@paper.local"')
        lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    if cycle_seconds is not None:
        lines += ["", "[settlement]", f"cycle_seconds = {cycle_seconds}"]
    if protection:
        lines += ["", "[protection]"] + [f"{k} = {json.dumps(v)}" for k, v in protection.items()]
    if treasury:
        env |= {"MASTER_API_KEY": "master-key-000001", "MASTER_API_SECRET": "master-secret-000001"}
        lines += [
            "",
            "[treasury]",
            'name = "master"',
            'environment = "paper"',
            f'api_url = "{url}"',
            'api_key_env = "MASTER_API_KEY"',
            'api_secret_env = "MASTER_API_SECRET"',
            'email = "master@paper.local"',
        ]
    path = directory / "bot.toml"
    path.write_text("\n".join(lines) + "\n")
    return path, env


@dataclass
class Daemon:
    proc: asyncio.subprocess.Process
    events: list[dict[str, Any]] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            with contextlib.suppress(json.JSONDecodeError):
                self.events.append(json.loads(line))

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == event]

    async def wait_event(self, event: str, count: int = 1, timeout: float = 20) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.named(event)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no {count}x {event!r} within {timeout}s; seen: {[e.get('event') for e in self.events][-30:]}"
                )
            if self.proc.returncode is not None and self.reader is not None and self.reader.done():
                raise AssertionError(f"daemon exited {self.proc.returncode} before {event!r}")
            await asyncio.sleep(0.02)
        return self.named(event)

    async def stop(self, timeout: float = 20) -> int:
        if self.proc.returncode is None:
            self.proc.terminate()
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        if self.reader is not None:
            await self.reader
        return code

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()
        if self.reader is not None:
            await self.reader


async def bot_process(*args: str, env: dict[str, str] | None = None, merge_stderr: bool = False) -> Any:
    """`python -m bot ARGS` from the checkout, stdout (and stderr) piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT if merge_stderr else asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)},
    )


async def slow_orders(
    paper: Paper, names: Iterable[str], delay_s: float, count: int, path: str = "/fapi/v1/order"
) -> None:
    """Each named account's next `count` orders execute at once but answer `delay_s` later."""
    for name in names:
        fault = {
            "path": path,
            "method": "POST",
            "account": name,
            "kind": "delay",
            "delay_s": delay_s,
            "count": count,
        }
        await paper.control("POST", "/faults", fault)


async def start_daemon(config: Path, env: dict[str, str], started: bool = True) -> Daemon:
    proc = await bot_process("run", "--config", str(config), env=env, merge_stderr=True)
    daemon = Daemon(proc)
    RUNNING.append(daemon)
    daemon.reader = asyncio.create_task(daemon._read())
    if started:
        await daemon.wait_event("daemon_started")
    return daemon


async def positions(paper: Paper, name: str) -> dict[str, Decimal]:
    state = await paper.state(name)
    return {p["symbol"]: Decimal(p["positionAmt"]) for p in state["positions"]}


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(0.05)


async def wait_until(condition: Callable[[], bool], timeout: float = 10, what: str = "condition") -> None:
    """`eventually` for a condition read without an await (what a thread or a callback did)."""

    async def check() -> bool:
        return condition()

    await eventually(check, timeout, what)


async def wait_positions(paper: Paper, expected: dict[str, dict[str, Decimal]], timeout: float = 15) -> None:
    async def check() -> bool:
        return all([await positions(paper, n) == want for n, want in expected.items()])

    try:
        await eventually(check, timeout, "positions")
    except AssertionError:
        actual = {n: await positions(paper, n) for n in expected}
        raise AssertionError(f"positions never reached {expected}; actual {actual}") from None


async def client_ids_are_unique(paper: Paper, name: str, spot: bool = False) -> int:
    """Asserts that no client order id was used for two different orders; returns the order count."""
    state = await paper.state(name)
    orders = state["spot"]["orders"] if spot else state["orders"]
    ids = [o["clientOrderId"] for o in orders]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert duplicates == [], f"{name}: client order ids sent for two orders: {duplicates}"
    return len(orders)


def event_time(event: dict[str, Any]) -> float:
    """A log event's `ts` as seconds since the epoch."""
    return datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()


def follower_states(tmp_path: Path) -> dict[str, str]:
    """Each follower's state as the daemon's SQLite state holds it (read-only)."""
    with contextlib.closing(sqlite3.connect(tmp_path / "state" / "copybot.sqlite3")) as db:
        return dict(db.execute("SELECT name, state FROM followers"))


def rewrite(config: Path, old: str, new: str) -> None:
    text = config.read_text()
    assert old in text, f"{old!r} not in the config"
    config.write_text(text.replace(old, new))


def drop_follower(config: Path, name: str) -> None:
    """Removes one follower's block from a config written by `write_config`."""
    text = config.read_text()
    start = text.index(f'[[followers]]\nname = "{name}"')
    end = text.find("\n[", start + 1)
    config.write_text(text[:start] + (text[end + 1 :] if end != -1 else ""))


async def hup(daemon: Daemon) -> None:
    """SIGHUP, then waits for the reload to be applied."""
    reloaded = len(daemon.named("config_reloaded"))
    daemon.proc.send_signal(signal.SIGHUP)
    await daemon.wait_event("config_reloaded", count=reloaded + 1)


async def fault(paper: Paper, **spec: Any) -> None:
    await paper.control("POST", "/faults", spec)


RUNNING: list[Daemon] = []  # every daemon a test started: killed at its end if still running (see conftest)


async def kill_leftovers() -> None:
    while RUNNING:
        daemon = RUNNING.pop()
        if daemon.proc.returncode is None:
            await daemon.kill()

"""Benchmarks of the copy path: detection latency (poll, stream), fan-out against a bare client, start-up and
memory with many followers, and the cost of one Smart Sync decision.

The paper exchange and the daemon each run in their own process (`bot paper-exchange`, `bot run`); the
figures come from the daemon's own JSON log timestamps (ms) and the exchange's fill times.

    python bench/copy_path.py [--followers 1,10,100,500] [--spot-followers 100] [--changes 20] [--runs 3]

Prints one table and writes bench/results/copy_path.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import random
import sys
import tempfile
import time
import timeit
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import free_port, machine, percentiles, write_results  # noqa: E402
from bot.core.model import FollowerView, LeadChange, Market  # noqa: E402
from bot.core.sync import plan_change  # noqa: E402
from bot.venue.binance_compat import build_binance_spot, build_binanceusdm  # noqa: E402

D = Decimal
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def ms_of(ts: str) -> int:
    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)


def cpu_s(pid: int) -> float:
    """The process's CPU time so far (user + system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


class Setup:
    """A paper exchange process and a daemon process with `n` followers."""

    def __init__(
        self,
        n: int,
        lead_source: str,
        workdir: Path,
        stop_loss_pct: int | None = None,
        reconcile_s: int = 3600,
        market: str = "futures",
    ) -> None:
        self.n = n
        self.market = market
        self.symbol = "ETH/USDT" if market == "spot" else "ETH/USDT:USDT"
        self.reconcile_s = reconcile_s
        self.lead_source = lead_source
        self.workdir = workdir
        self.stop_loss_pct = stop_loss_pct
        self.names = [f"f{i:04d}" for i in range(n)]
        self.events: list[dict[str, Any]] = []
        self._named: dict[str, list[dict[str, Any]]] = {}
        self._arrived = asyncio.Event()

    def accounts(self) -> dict[str, Any]:
        accounts: list[dict[str, Any]] = [
            {
                "name": "lead",
                "api_key": "lead-key-bench",
                "api_secret": "lead-secret-bench",
                "email": "lead@paper.local",
                "usdt": "200000",
            }
        ]
        accounts += [
            {
                "name": n,
                "api_key": f"{n}-key-bench",
                "api_secret": f"{n}-secret-bench",
                "email": f"{n}@paper.local",
                "usdt": "1000",
            }
            for n in self.names
        ]
        for account in accounts:  # the same money in the spot wallets, for a spot daemon
            account["spot"] = {"USDT": account["usdt"]}
        return {
            "accounts": accounts,
            "prices": {"BTCUSDT": "50000", "ETHUSDT": "3000", "SOLUSDT": "150"},
            "commission": {"maker": "0", "taker": "0"},  # Binance's limits: on, as the exchange's default
            "spot_commission": {"maker": "0", "taker": "0"},
        }

    def config(self, url: str) -> tuple[Path, dict[str, str]]:
        env = {"LEAD_API_KEY": "lead-key-bench", "LEAD_API_SECRET": "lead-secret-bench"}
        lines = [
            "[bot]",
            f'market = "{self.market}"',
            f'state_dir = "{self.workdir / "state"}"',
            "poll_interval_s = 1.0",
            f"reconcile_interval_s = {self.reconcile_s}",
            "heartbeat_interval_s = 3600",
            f'lead_source = "{self.lead_source}"',
            "",
            "[lead]",
            'name = "lead"',
            'environment = "paper"',
            f'api_url = "{url}"',
            'api_key_env = "LEAD_API_KEY"',
            'api_secret_env = "LEAD_API_SECRET"',
        ]
        for name in self.names:
            upper = name.upper()
            env[f"{upper}_KEY"] = f"{name}-key-bench"
            env[f"{upper}_SECRET"] = f"{name}-secret-bench"
            lines += [
                "",
                "[[followers]]",
                f'name = "{name}"',
                'environment = "paper"',
                f'api_url = "{url}"',
                f'api_key_env = "{upper}_KEY"',
                f'api_secret_env = "{upper}_SECRET"',
                "investment = 1000",
            ]
            if self.stop_loss_pct is not None:
                lines.append(f"total_stop_loss_pct = {self.stop_loss_pct}")
        path = self.workdir / "bot.toml"
        path.write_text("\n".join(lines) + "\n")
        return path, env

    async def __aenter__(self) -> Setup:
        accounts = self.workdir / "accounts.json"
        accounts.write_text(json.dumps(self.accounts()))
        port = free_port()
        self.exchange = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "paper-exchange",
            "--accounts",
            str(accounts),
            "--port",
            str(port),
            "--markets",
            "300",
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env=ENV,
        )
        assert self.exchange.stdout is not None
        self.url = json.loads(await self.exchange.stdout.readline())["url"]
        await self._start_daemon()
        self.startup_s = self.started_s
        if self.lead_source == "stream":
            await self.wait_for(lambda: bool(self.named("stream_connected")), 30)
        self.rss_mb = rss_mb(self.daemon.pid)
        build = build_binance_spot if self.market == "spot" else build_binanceusdm
        self.lead = build(self.url, "lead-key-bench", "lead-secret-bench")
        await self.lead.load_markets()
        return self

    async def _start_daemon(self) -> None:
        """`bot run` on this setup's configuration and state; `started_s`: until it is ready to copy."""
        config, env = self.config(self.url)
        self.events, self._named = [], {}
        started = time.perf_counter()
        self.daemon = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            "--config",
            str(config),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=ROOT,
            env={**ENV, **env},
            limit=2**24,
        )
        self.reader = asyncio.create_task(self._read())
        # a first activation reads each follower's account (weight 5): paced by the request budget
        await self.wait_for(lambda: bool(self.named("daemon_started")), 900)
        self.started_s = time.perf_counter() - started

    async def restart(self) -> float:
        """SIGTERM, then a start on the same state: every follower is active already. Seconds until ready."""
        self.daemon.terminate()
        await self.daemon.wait()
        await self.reader
        await self._start_daemon()
        return self.started_s

    async def _read(self) -> None:
        """The daemon's log lines as they come, by event name; waiters are woken once per batch of lines."""
        assert self.daemon.stdout is not None
        async for line in self.daemon.stdout:
            with contextlib.suppress(json.JSONDecodeError):
                event = json.loads(line)
                self.events.append(event)
                self._named.setdefault(str(event.get("event")), []).append(event)
                self._arrived.set()

    async def wait_for(self, check: Any, timeout: float) -> None:
        """Until `check()` holds, looked at again when log lines arrive (no polling: the benchmark's own CPU is
        not taken from the daemon and the exchange on a two-core machine while a fan-out runs)."""
        deadline = time.monotonic() + timeout
        while True:
            self._arrived.clear()
            if check():
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"benchmark waited {timeout}s; last events {self.events[-5:]}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    def named(self, event: str) -> list[dict[str, Any]]:
        """The daemon's log lines with this event name so far, in order (the list itself: read, do not change)."""
        return self._named.get(event, [])

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, f"{self.url}/_paper{path}", json=body) as resp,
        ):
            return await resp.json()

    async def lead_change(self, side: str, qty: int = 20) -> tuple[int, dict[str, Any]]:
        """One lead order; returns its fill time at the exchange and the daemon's lead_position_changed."""
        seen = len(self.named("lead_position_changed"))
        order = await self.lead.create_order(self.symbol, "market", side, qty)  # followers: 0.1 ETH for 20
        filled_ms = int(order["info"].get("updateTime") or order["info"]["transactTime"])
        await self.wait_for(lambda: len(self.named("lead_position_changed")) > seen, 30)
        return filled_ms, self.named("lead_position_changed")[seen]

    async def __aexit__(self, *exc: object) -> None:
        await self.lead.close()
        self.daemon.terminate()
        await self.daemon.wait()
        await self.reader
        self.exchange.terminate()
        await self.exchange.wait()


async def detection(lead_source: str, changes: int) -> dict[str, Any]:
    rng = random.Random(5)
    with tempfile.TemporaryDirectory() as tmp:
        async with Setup(1, lead_source, Path(tmp)) as setup:
            samples = []
            for i in range(changes):
                filled_ms, event = await setup.lead_change("buy" if i % 2 == 0 else "sell")
                samples.append(ms_of(event["ts"]) - filled_ms)
                await asyncio.sleep(rng.uniform(0.05, 1.05))  # a random phase against the poll timer
            return percentiles(samples, 2)


def signed(name: str, side: str = "BUY") -> str:
    query = urlencode(
        {"symbol": "ETHUSDT", "side": side, "type": "MARKET", "quantity": "0.1", "timestamp": int(time.time() * 1000)}
    )
    return query + "&signature=" + hmac.new(f"{name}-secret-bench".encode(), query.encode(), hashlib.sha256).hexdigest()


async def bare(url: str, names: list[str], rounds: int, market: str = "futures") -> dict[str, Any]:
    """The same N signed orders (one per follower account), all at once, from a bare aiohttp client (on spot,
    buys and sales in turn: a spot wallet pays for its buys)."""
    samples = []
    path = "/api/v3/order" if market == "spot" else "/fapi/v1/order"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one(name: str, side: str) -> None:
            headers = {"X-MBX-APIKEY": f"{name}-key-bench", "Content-Type": "application/x-www-form-urlencoded"}
            async with session.post(url + path, data=signed(name, side), headers=headers) as resp:
                await resp.read()
                assert resp.status == 200, await resp.text()

        await asyncio.gather(*(one(n, "BUY") for n in names))  # warm the pool
        cpu_before = time.process_time()
        for i in range(rounds):
            started = time.perf_counter()
            await asyncio.gather(*(one(n, "SELL" if market == "spot" and i % 2 == 0 else "BUY") for n in names))
            samples.append((time.perf_counter() - started) * 1000)
        cpu_ms = (time.process_time() - cpu_before) * 1000  # this (benchmark) process: the bare client's own
    return {**percentiles(samples, 2), "client_cpu_ms_per_order": round(cpu_ms / (rounds * len(names)), 3)}


async def first_change(setup: Setup, n: int) -> int:
    """The first lead change after start-up, not among the samples (as the bare client warms its connection
    pool first): a futures follower's first open in a symbol sets its leverage there first, one request more
    per follower, once. Returns its fan-out in ms."""
    filled_before = len(setup.named("follower_order_filled"))
    _, event = await setup.lead_change("buy")
    await setup.wait_for(lambda: len(setup.named("follower_order_filled")) >= filled_before + n, 120)
    fills = setup.named("follower_order_filled")[filled_before : filled_before + n]
    await asyncio.sleep(0.2)
    return max(ms_of(f["ts"]) for f in fills) - ms_of(event["ts"])


async def fanout(n: int, changes: int, market: str = "futures") -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        async with Setup(n, "stream", Path(tmp), market=market) as setup:
            samples, commits, syncs, by_fan_out = [], [], [], []
            first_ms = await first_change(setup, n)
            cpu_before, exchange_before = cpu_s(setup.daemon.pid), cpu_s(setup.exchange.pid)
            for i in range(changes):
                filled_before = len(setup.named("follower_order_filled"))
                copied_before = len(setup.named("lead_change_copied"))
                _, event = await setup.lead_change("sell" if i % 2 == 0 else "buy")
                target = filled_before + n
                await setup.wait_for(lambda t=target: len(setup.named("follower_order_filled")) >= t, 120)
                await setup.wait_for(lambda c=copied_before: len(setup.named("lead_change_copied")) > c, 120)
                fills = setup.named("follower_order_filled")[filled_before : filled_before + n]
                samples.append(max(ms_of(f["ts"]) for f in fills) - ms_of(event["ts"]))
                copied = setup.named("lead_change_copied")[copied_before]
                commits.append(int(copied["plan_commits"]))  # a chunk each
                syncs.append(int(copied["disk_syncs"]))  # fsyncs: a chunk's, or several chunks' at once
                by_fan_out.append(int(copied["followers"]))  # the rest were copied by their own workers
                await asyncio.sleep(0.2)
            cpu = cpu_s(setup.daemon.pid) - cpu_before  # the fan-outs' and the pauses' (idle: little)
            exchange_cpu = cpu_s(setup.exchange.pid) - exchange_before
            fan_ms = percentiles(samples, 2)
            result: dict[str, Any] = {
                "fanout_ms": fan_ms,
                "first_change_ms": first_ms,
                "plan_commits_per_fanout": {"p50": sorted(commits)[len(commits) // 2], "max": max(commits)},
                "disk_syncs_per_fanout": {"p50": sorted(syncs)[len(syncs) // 2], "max": max(syncs)},
                "followers_by_fan_out_min": min(by_fan_out),
                "cpu_ms_per_order": round(cpu * 1000 / (changes * n), 3),
                "exchange_cpu_ms_per_order": round(exchange_cpu * 1000 / (changes * n), 3),
                "startup_s": round(setup.startup_s, 2),
                "rss_mb": setup.rss_mb,
                "rss_per_follower_mb": round(setup.rss_mb / n, 3),
            }
            bare_ms = result["bare_ms"] = await bare(setup.url, setup.names, max(3, changes), market)
            result["ratio_p50"] = round(fan_ms["p50"] / max(bare_ms["p50"], 0.01), 2)
            result["ratio_p99"] = round(fan_ms["p99"] / max(bare_ms["p50"], 0.01), 2)
            result["restart_s"] = round(await setup.restart(), 2)
            return result


def core_cost() -> dict[str, float]:
    market = Market("ETHUSDT", D("0.001"), D("0.001"), D("20"))
    view = FollowerView("f", D("1234.56"), {"ETHUSDT": D("0.2"), "BTCUSDT": D("0.01")}, D(5), D("0.5"))
    marks = {"ETHUSDT": D("3001.5"), "BTCUSDT": D("50010")}
    change = LeadChange(7, "ETHUSDT", D("2"), D("3.5"), D("3001"))
    runs = 20000
    seconds = min(timeit.repeat(lambda: plan_change(change, D("10234.5"), view, market, marks), number=runs, repeat=5))
    return {"us_per_decision": round(seconds / runs * 1e6, 2)}


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--followers", default="1,10,100,500")
    parser.add_argument("--spot-followers", default="100", help="spot fan-outs (empty: none)")
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--runs", type=int, default=1, help="runs of each fan-out size (each its own processes)")
    args = parser.parse_args()
    results: dict[str, Any] = {"core": core_cost()}
    results["detection_poll_ms"] = await detection("poll", args.changes)
    results["detection_stream_ms"] = await detection("stream", args.changes)
    sizes = [("futures", int(x)) for x in args.followers.split(",") if x]
    sizes += [("spot", int(x)) for x in args.spot_followers.split(",") if x]
    for market, n in sizes:
        changes = 5 if n >= 500 else args.changes // 2
        key = f"fanout_{n}" if market == "futures" else f"fanout_spot_{n}"
        results[key] = [await fanout(n, changes, market) for _ in range(args.runs)]
    print(f"machine: {machine()}")
    print(f"{'benchmark':<28} {'p50':>10} {'p99':>10} {'n':>4}  notes")
    print(f"{'smart sync decision':<28} {results['core']['us_per_decision']:>9}µs {'':>10} {'':>4}")
    for key in ("detection_poll_ms", "detection_stream_ms"):
        row = results[key]
        print(
            f"{key.replace('_ms', ''):<28} {row['p50']:>8}ms {row['p99']:>8}ms {row['n']:>4}  lead fill -> "
            "lead_position_changed"
        )
    for key, runs in results.items():
        if not key.startswith("fanout_"):
            continue
        for i, row in enumerate(runs, start=1):
            f, b = row["fanout_ms"], row["bare_ms"]
            c, d = row["plan_commits_per_fanout"], row["disk_syncs_per_fanout"]
            print(
                f"{key + f' run {i}':<28} {f['p50']:>8}ms {f['p99']:>8}ms {f['n']:>4}  bare p50 {b['p50']}ms, "
                f"first change {row['first_change_ms']}ms, "
                f"ratio p50 {row['ratio_p50']}x p99 {row['ratio_p99']}x, commits/fan-out {c['p50']} (max {c['max']}), "
                f"syncs/fan-out {d['p50']} (max {d['max']}), "
                f"CPU/order: daemon {row['cpu_ms_per_order']}ms, exchange {row['exchange_cpu_ms_per_order']}ms, "
                f"bare client {b['client_cpu_ms_per_order']}ms; start-up {row['startup_s']}s, "
                f"restart {row['restart_s']}s, RSS {row['rss_mb']}MB"
            )
    print(f"written: {write_results('copy_path', results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

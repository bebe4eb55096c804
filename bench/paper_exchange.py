"""Benchmark of the paper exchange: order latency through ccxt and a bare client, and a burst across accounts.

The paper exchange runs in its own process (`bot paper-exchange`) so that it never shares the benchmark's
event loop. Prints a table and writes JSON to bench/results/paper_exchange.json.

    python bench/paper_exchange.py [--orders 200] [--accounts 100]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import free_port, percentiles, write_results  # noqa: E402
from bot.venue.binance_compat import build_binanceusdm  # noqa: E402


def accounts_file(count: int) -> dict[str, Any]:
    return {
        "accounts": [
            {
                "name": f"a{i:04d}",
                "api_key": f"a{i:04d}-key-bench",
                "api_secret": f"a{i:04d}-secret-bench",
                "email": f"a{i:04d}@paper.local",
                "usdt": "100000",
            }
            for i in range(count)
        ],
        "prices": {"BTCUSDT": "50000", "ETHUSDT": "3000", "SOLUSDT": "150"},
        "limits": {"enabled": False},  # measures speed, not the budget (issue #10 adds a budget benchmark)
    }


async def ccxt_sequential(url: str, orders: int) -> dict[str, float]:
    ex = build_binanceusdm(url, "a0000-key-bench", "a0000-secret-bench")
    try:
        await ex.load_markets()
        await ex.create_order("SOL/USDT:USDT", "market", "buy", 1)  # warm the connection
        samples = []
        for i in range(orders):
            side = "sell" if i % 2 else "buy"
            started = time.perf_counter()
            await ex.create_order("SOL/USDT:USDT", "market", side, 1)
            samples.append((time.perf_counter() - started) * 1000)
        return percentiles(samples)
    finally:
        await ex.close()


def signed_order(secret: str, side: str) -> str:
    params = {
        "symbol": "SOLUSDT",
        "side": side,
        "type": "MARKET",
        "quantity": "1",
        "timestamp": int(time.time() * 1000),
    }
    query = urlencode(params)
    return query + "&signature=" + hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()


async def bare_sequential(url: str, orders: int) -> dict[str, float]:
    headers = {"X-MBX-APIKEY": "a0001-key-bench", "Content-Type": "application/x-www-form-urlencoded"}
    async with aiohttp.ClientSession(headers=headers) as session:
        samples = []
        for i in range(orders + 1):
            started = time.perf_counter()
            async with session.post(
                url + "/fapi/v1/order", data=signed_order("a0001-secret-bench", "SELL" if i % 2 else "BUY")
            ) as resp:
                assert resp.status == 200, await resp.text()
                await resp.read()
            if i:
                samples.append((time.perf_counter() - started) * 1000)
        return percentiles(samples)


async def bare_burst(url: str, accounts: int) -> dict[str, float]:
    """One signed order per account, all at once, each account on its own connection (like followers)."""
    sessions = [
        aiohttp.ClientSession(
            headers={"X-MBX-APIKEY": f"a{i:04d}-key-bench", "Content-Type": "application/x-www-form-urlencoded"}
        )
        for i in range(accounts)
    ]
    try:

        async def one(i: int) -> float:
            started = time.perf_counter()
            async with sessions[i].post(
                url + "/fapi/v1/order", data=signed_order(f"a{i:04d}-secret-bench", "BUY")
            ) as resp:
                assert resp.status == 200, await resp.text()
                await resp.read()
            return (time.perf_counter() - started) * 1000

        started = time.perf_counter()
        latencies = await asyncio.gather(*(one(i) for i in range(accounts)))
        wall = (time.perf_counter() - started) * 1000
        return {
            **percentiles(list(latencies)),
            "wall_ms": round(wall, 3),
            "orders_per_s": round(accounts / wall * 1000, 1),
        }
    finally:
        await asyncio.gather(*(s.close() for s in sessions))


async def run(url: str, orders: int, accounts: int) -> dict[str, Any]:
    return {
        "ccxt_sequential_order": await ccxt_sequential(url, orders),
        "bare_sequential_order": await bare_sequential(url, orders),
        f"bare_burst_{accounts}_accounts": await bare_burst(url, accounts),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--accounts", type=int, default=100)
    args = parser.parse_args()
    port = free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(accounts_file(max(args.accounts, 2)), handle)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "paper-exchange", "--accounts", handle.name, "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        url = json.loads(proc.stdout.readline())["url"]
        results = asyncio.run(run(url, args.orders, args.accounts))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"{'benchmark':<34} {'p50 ms':>9} {'p99 ms':>9} {'n':>5} {'orders/s':>9}")
    for name, row in results.items():
        print(f"{name:<34} {row['p50']:>9.3f} {row['p99']:>9.3f} {row['n']:>5} {row.get('orders_per_s', ''):>9}")
    print(f"written: {write_results('paper_exchange', results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

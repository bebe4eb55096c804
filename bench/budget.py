"""The daemon inside the exchange's per-IP request budget (SPEC 12), against the paper exchange in its own
process enforcing Binance's default limits (2,400 weight a minute per IP, the daemon's share 1,200):

- start-up: `bot run` started → `daemon_started` (a first activation reads every follower's account);
- weight per minute, the exchange's own count for the IP: a whole idle minute (steady) and the minutes of a
  lead change every second (peak), and the highest minute of the whole run;
- fan-out while the lead changes every second: `lead_position_changed` → the last follower's fill;
- for the largest N, the stop-loss latency: the mark moved (control API) → each follower's closing order at
  the exchange, p50/p99;
- 429s, 418s and bans (must be none).

    python bench/budget.py [--followers 10,100,500] [--changes 60]

Prints one table and writes bench/results/budget.json.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import machine, percentiles, write_results  # noqa: E402
from bench.copy_path import Setup, ms_of  # noqa: E402

LADDER = ["buy", "buy", "buy", "sell", "sell", "sell"]  # the lead goes 0, 20, 40, 60, 40, 20, 0, ... ETH
STOP_LOSS_PCT = 25
LIMIT_SHARE = 1200  # half of Binance's 2,400


async def minute_weights(setup: Setup) -> dict[int, int]:
    usage = (await setup.control("GET", "/limits"))["ips"].get("127.0.0.1", {})
    return {int(m): int(w) for m, w in usage.get("minutes", {}).items()}


async def until_next_minute() -> int:
    """Sleeps to just after the next calendar minute starts; returns that minute's number."""
    now = time.time()
    await asyncio.sleep(60 - now % 60 + 0.05)
    return int(time.time() // 60)


async def changes_once_a_second(setup: Setup, count: int) -> dict[str, Any]:
    """`count` lead changes, one a second; fan-out per change from the daemon's log."""
    first_seq = len(setup.named("lead_position_changed"))
    start = time.monotonic()
    for i in range(count):
        side = LADDER[i % len(LADDER)]
        await setup.lead.create_order("ETH/USDT:USDT", "market", side, 20)
        await asyncio.sleep(max(0.0, start + i + 1 - time.monotonic()))
    changes = setup.named("lead_position_changed")[first_seq:]
    await setup.wait_for(
        lambda: all(
            sum(1 for f in setup.named("follower_order_filled") if f.get("lead_change") == c["lead_change"]) >= setup.n
            for c in changes
        ),
        300,
    )
    samples = []
    for change in setup.named("lead_position_changed")[first_seq:]:
        fills = [f for f in setup.named("follower_order_filled") if f.get("lead_change") == change["lead_change"]]
        samples.append(max(ms_of(f["ts"]) for f in fills) - ms_of(change["ts"]))
    return {"changes_sent": count, "changes_detected": len(samples), "fanout_ms": percentiles(samples, 1)}


async def stop_loss_latency(setup: Setup) -> dict[str, Any]:
    """Every follower holds 1 ETH (the lead 200 ETH, 3x); the mark drops 10 %: each copy equity is 700, under
    the 750 threshold of a 25 % stop. Latency: the mark moved → the follower's closing order at the exchange."""
    await setup.lead_change("buy", 200)
    await setup.wait_for(
        lambda: sum(1 for f in setup.named("follower_order_filled") if f.get("qty") == "1.000") >= setup.n, 300
    )
    await asyncio.sleep(3)
    moved_ms = int(time.time() * 1000)
    await setup.control("POST", "/prices", {"prices": {"ETHUSDT": "2700"}})
    await setup.wait_for(lambda: len(setup.named("follower_stopped")) >= setup.n, 900)
    samples = []
    for name in setup.names:
        orders = (await setup.control("GET", f"/accounts/{name}"))["orders"]
        stops = [o for o in orders if o["clientOrderId"].split("-")[3].startswith("s")]
        samples.append(min(int(o["time"]) for o in stops) - moved_ms)
    return {"stop_loss_ms": percentiles(samples, 1)}


async def one_size(n: int, changes: int, stop_loss: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        # the default intervals (reconciliation every 30 s, stretched by the budget)
        async with Setup(n, "stream", Path(tmp), stop_loss_pct=STOP_LOSS_PCT, reconcile_s=30) as setup:
            result: dict[str, Any] = {"startup_s": round(setup.startup_s, 1), "rss_mb": setup.rss_mb}
            idle = await until_next_minute()
            await until_next_minute()
            result["steady_weight_per_min"] = (await minute_weights(setup)).get(idle, 0)
            busy_from = await until_next_minute()
            result.update(await changes_once_a_second(setup, changes))
            busy = {m: w for m, w in (await minute_weights(setup)).items() if m >= busy_from}
            result["peak_weight_per_min"] = max(busy.values(), default=0)
            if stop_loss:
                result.update(await stop_loss_latency(setup))
            weights = await minute_weights(setup)
            result["max_weight_any_minute"] = max(weights.values(), default=0)
            usage = (await setup.control("GET", "/limits"))["ips"].get("127.0.0.1", {})
            result["http_429"] = usage.get("rejected_429", 0)
            result["http_418"] = usage.get("rejected_418", 0)
            result["bans"] = usage.get("bans", 0)
            result["rate_limited_events"] = len(setup.named("rate_limited"))
            paced = setup.named("reconcile_interval_effective")
            result["reconcile_interval_s"] = float(paced[-1]["effective_s"]) if paced else None
            return result


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--followers", default="10,100,500")
    parser.add_argument("--changes", type=int, default=60)
    args = parser.parse_args()
    sizes = [int(x) for x in args.followers.split(",")]
    results: dict[str, Any] = {}
    for n in sizes:
        results[f"followers_{n}"] = await one_size(n, args.changes, stop_loss=n == max(sizes))
    print(f"machine: {machine()}")
    header = (
        f"{'followers':>9} {'start-up':>9} {'steady/min':>10} {'peak/min':>9} {'max/min':>8} {'fan-out p50/p99':>17}"
    )
    print(header + f" {'reconcile':>9} {'429/418':>8}  stop loss p50/p99")
    for n in sizes:
        row = results[f"followers_{n}"]
        fan = row["fanout_ms"]
        stop = row.get("stop_loss_ms")
        print(
            f"{n:>9} {row['startup_s']:>8}s {row['steady_weight_per_min']:>10} {row['peak_weight_per_min']:>9} "
            f"{row['max_weight_any_minute']:>8} {fan['p50']:>7}/{fan['p99']:>7}ms {row['reconcile_interval_s']:>8}s "
            f"{row['http_429']:>4}/{row['http_418']:<3}  "
            + (f"{stop['p50']}/{stop['p99']} ms (n={stop['n']})" if stop else "-")
        )
    ok = all(
        r["max_weight_any_minute"] <= LIMIT_SHARE and r["http_429"] == 0 and r["http_418"] == 0
        for r in results.values()
    )
    print(f"every minute at or below {LIMIT_SHARE}, no 429/418: {'yes' if ok else 'NO'}")
    print(f"written: {write_results('budget', results)}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

"""Many accounts and a burst of concurrent orders: every order lands once, nothing waits on one slow path."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from tests.conftest import BTC, SOL
from tests.paper_harness import Paper

ACCOUNTS = 40


async def test_concurrent_orders_across_many_accounts(paper: Paper) -> None:
    names = [f"f{i:03d}" for i in range(ACCOUNTS)]
    for name in names:
        await paper.control(
            "POST",
            "/accounts",
            {
                "name": name,
                "api_key": f"{name}-key-0000",
                "api_secret": f"{name}-secret-0000",
                "email": f"{name}@paper.local",
                "usdt": "1000",
            },
        )
    from bot.venue.binance_compat import build_binanceusdm

    clients = [build_binanceusdm(paper.url, f"{n}-key-0000", f"{n}-secret-0000") for n in names]
    try:
        markets = await clients[0].load_markets()
        for client in clients[1:]:
            client.set_markets(markets)  # market metadata loaded once, shared by every client
        started = time.perf_counter()
        results = await asyncio.gather(
            *(
                client.create_order(SOL, "market", "buy", 1 + i % 3, params={"clientOrderId": f"burst-{i}"})
                for i, client in enumerate(clients)
            ),
            *(client.create_order(BTC, "market", "sell", 0.002) for client in clients),
        )
        elapsed = time.perf_counter() - started
    finally:
        await asyncio.gather(*(client.close() for client in clients))
    assert all(r["status"] == "closed" for r in results)
    assert elapsed < 10, f"{len(results)} concurrent orders took {elapsed:.2f}s"
    for i, name in enumerate(names[:5]):
        state = await paper.state(name)
        sizes = {p["symbol"]: Decimal(p["positionAmt"]) for p in state["positions"]}
        assert sizes == {"SOLUSDT": Decimal(1 + i % 3), "BTCUSDT": Decimal("-0.002")}
        assert len(state["orders"]) == 2
        assert f"burst-{i}" in {o["clientOrderId"] for o in state["orders"]}

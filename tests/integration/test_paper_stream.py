"""The user data stream through ccxt.pro: fills become position, order, balance and trade updates."""

from __future__ import annotations

import asyncio
from typing import Any

import ccxt.async_support as ccxt
import pytest

from tests.conftest import BTC, ETH
from tests.paper_harness import Paper

WAIT = 5.0


async def _subscribed(paper: Paper, coro_factory: Any) -> asyncio.Task[Any]:
    """Starts a watch and waits until the paper exchange has the websocket connected."""
    task = asyncio.create_task(coro_factory())
    for _ in range(200):
        if (await paper.state("alice"))["stream_connections"] > 0:
            return task
        await asyncio.sleep(0.01)
    task.cancel()
    raise AssertionError("the websocket never connected")


async def test_watch_positions_sees_a_fill(paper: Paper) -> None:
    pro = paper.client("alice", stream=True)
    rest = paper.client("alice")
    first = await pro.watch_positions()  # the REST snapshot ccxt.pro takes first
    assert first == []
    task = await _subscribed(paper, pro.watch_positions)
    await rest.create_order(BTC, "market", "buy", 0.002)
    positions = await asyncio.wait_for(task, WAIT)
    (position,) = [p for p in positions if p["symbol"] == BTC]
    assert position["contracts"] == 0.002 and position["side"] == "long" and position["entryPrice"] == 50000


async def test_watch_orders_sees_new_and_filled(paper: Paper) -> None:
    pro = paper.client("alice", stream=True)
    rest = paper.client("alice")
    task = await _subscribed(paper, pro.watch_orders)
    await rest.create_order(ETH, "market", "sell", 0.01, params={"clientOrderId": "ws-order-1"})
    seen: list[Any] = []
    while not any(o["status"] == "closed" for o in seen):
        seen = await asyncio.wait_for(task, WAIT)
        task = asyncio.create_task(pro.watch_orders())
    task.cancel()
    closed = next(o for o in seen if o["status"] == "closed")
    assert closed["clientOrderId"] == "ws-order-1" and closed["filled"] == 0.01 and closed["side"] == "sell"


async def test_watch_balance_sees_the_commission(paper: Paper) -> None:
    pro = paper.client("alice", stream=True)
    rest = paper.client("alice")
    task = await _subscribed(paper, pro.watch_balance)
    await rest.create_order(BTC, "market", "buy", 0.002)  # 100 notional, 0.05 commission
    balance = await asyncio.wait_for(task, WAIT)
    assert balance["USDT"]["total"] == pytest.approx(999.95)


async def test_watch_my_trades_sees_price_fee_and_side(paper: Paper) -> None:
    pro = paper.client("alice", stream=True)
    rest = paper.client("alice")
    task = await _subscribed(paper, pro.watch_my_trades)
    await rest.create_order(BTC, "market", "buy", 0.002)
    (trade,) = await asyncio.wait_for(task, WAIT)
    assert trade["symbol"] == BTC and trade["side"] == "buy" and trade["price"] == 50000
    assert trade["fee"]["cost"] == pytest.approx(0.05)


async def test_dropped_websocket_is_reported_to_the_watcher(paper: Paper) -> None:
    pro = paper.client("alice", stream=True)
    task = await _subscribed(paper, pro.watch_orders)
    dropped = await paper.control("POST", "/ws/drop", {"account": "alice"})
    assert dropped["dropped"] == 1
    with pytest.raises(ccxt.NetworkError):
        await asyncio.wait_for(task, WAIT)


async def test_expired_listen_key_closes_the_stream(paper: Paper) -> None:
    pro = paper.client("alice", stream=True)
    task = await _subscribed(paper, pro.watch_orders)
    expired = await paper.control("POST", "/listen-keys/expire", {"account": "alice"})
    assert expired["expired"] == 1
    with pytest.raises(ccxt.BaseError):
        await asyncio.wait_for(task, WAIT)
    rest = paper.client("alice")
    with pytest.raises(ccxt.AuthenticationError):  # -1125: keep-alive of the expired key
        await rest.fapiPrivatePutListenKey()

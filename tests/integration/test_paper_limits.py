"""The paper exchange's limits are Binance's (SPEC 12), seen through unmodified ccxt: the used-weight header on
every answer, 429 (-1003, Retry-After) over the limit, then escalating 418 bans for an IP that keeps sending,
new-order counts per account, websocket connection attempts per IP, and the control API over all of it."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import ccxt
import pytest

from bot.paper.server import PaperConfig, PaperExchange, wall_clock_ms
from tests.conftest import BTC, ETH
from tests.paper_harness import ACCOUNTS, Paper


class Clock:
    """The exchange's clock: frozen one second into a minute and moved by the test (public endpoints only:
    signed requests check their timestamp against it), or the wall clock once `ms` is None."""

    def __init__(self) -> None:
        self.ms: int | None = wall_clock_ms() // 60_000 * 60_000 + 1_000

    def __call__(self) -> int:
        return wall_clock_ms() if self.ms is None else self.ms


@pytest.fixture
async def limited() -> AsyncIterator[tuple[Paper, Clock]]:
    config: dict[str, Any] = copy.deepcopy(ACCOUNTS)
    config["limits"] = {"request_weight_per_minute": 20, "orders_per_10s": 3, "ws_connections_per_5min": 2}
    clock = Clock()
    exchange = PaperExchange(PaperConfig.model_validate(config), clock_ms=clock)
    url = await exchange.start("127.0.0.1", 0)
    session = aiohttp.ClientSession()
    paper = Paper(url, config, session, exchange)
    try:
        yield paper, clock
    finally:
        await paper.close()
        await session.close()
        await exchange.stop()


def used(client: Any) -> int:
    return int(client.last_response_headers["X-MBX-USED-WEIGHT-1M"])


async def test_every_answer_carries_the_used_weight_by_each_endpoints_documented_weight(paper: Paper) -> None:
    ex = paper.client("alice")
    await ex.load_markets()  # exchangeInfo: 1
    assert used(ex) == 1
    await ex.fapiPrivateV3GetAccount()  # 5
    assert used(ex) == 6
    await ex.fapiPrivateGetOpenOrders({"symbol": "BTCUSDT"})  # 1 with a symbol
    assert used(ex) == 7
    await ex.fapiPrivateGetOpenOrders()  # 40 without
    assert used(ex) == 47
    await ex.fapiPrivateGetIncome()  # 30
    assert used(ex) == 77
    await ex.create_order(BTC, "market", "buy", 0.002)  # a new order weighs 0 on the IP, 1 on the account
    assert used(ex) == 77
    headers = ex.last_response_headers
    assert (headers["X-MBX-ORDER-COUNT-10S"], headers["X-MBX-ORDER-COUNT-1M"]) == ("1", "1")
    limits = await paper.control("GET", "/limits")
    assert limits["settings"]["request_weight_per_minute"] == 2400  # Binance's, by default
    assert limits["ips"]["127.0.0.1"]["used_weight_1m"] == 77


async def test_over_the_limit_429_then_418_bans_that_escalate(limited: tuple[Paper, Clock]) -> None:
    paper, clock = limited
    assert clock.ms is not None
    ex = paper.client("alice")
    for _ in range(20):
        await ex.fapiPublicGetTime()  # weight 1 each: 20 is the limit
    with pytest.raises(ccxt.DDoSProtection) as caught:
        await ex.fapiPublicGetTime()
    assert "-1003" in str(caught.value) and "429" in str(caught.value)
    assert ex.last_response_headers["Retry-After"] == "59"  # until the next minute
    with pytest.raises(ccxt.DDoSProtection) as again:  # within a second: on its way already, not banned
        await ex.fapiPublicGetTime()
    assert "429" in str(again.value)
    clock.ms += 1_500
    with pytest.raises(ccxt.DDoSProtection) as banned:  # sending on during the back-off: banned
        await ex.fapiPublicGetTime()
    assert "418" in str(banned.value) and ex.last_response_headers["Retry-After"] == "120"
    clock.ms += 60_000  # a new minute, still banned
    with pytest.raises(ccxt.DDoSProtection):
        await ex.fapiPublicGetTime()
    assert ex.last_response_headers["Retry-After"] == "60"
    clock.ms += 60_000  # the ban is over
    await ex.fapiPublicGetTime()
    for _ in range(19):
        await ex.fapiPublicGetTime()
    with pytest.raises(ccxt.DDoSProtection):
        await ex.fapiPublicGetTime()  # 429
    clock.ms += 1_500
    with pytest.raises(ccxt.DDoSProtection):
        await ex.fapiPublicGetTime()  # a repeat offender: twice as long
    assert ex.last_response_headers["Retry-After"] == "240"
    usage = (await paper.control("GET", "/limits"))["ips"]["127.0.0.1"]
    assert (usage["rejected_429"], usage["bans"]) == (3, 2)
    await paper.control("DELETE", "/limits")  # reset: counts, back-offs and bans forgotten
    await ex.fapiPublicGetTime()
    assert used(ex) == 1


async def test_new_orders_past_the_accounts_count_are_refused(limited: tuple[Paper, Clock]) -> None:
    paper, clock = limited
    clock.ms = None  # signed requests: the real time
    await paper.control("POST", "/limits", {"request_weight_per_minute": 2400})
    ex = paper.client("alice")
    for _ in range(3):
        await ex.fapiPrivatePostOrder({"symbol": "ETHUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"})
    with pytest.raises(ccxt.DDoSProtection) as caught:
        await ex.fapiPrivatePostOrder({"symbol": "ETHUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"})
    assert "-1015" in str(caught.value)
    await paper.client("bob").create_order(ETH, "market", "buy", 0.01)  # per account: bob's count is his own
    state = await paper.state("alice")
    assert len(state["orders"]) == 3


async def test_websocket_connection_attempts_per_ip_are_limited(limited: tuple[Paper, Clock]) -> None:
    paper, clock = limited
    clock.ms = None
    await paper.control("POST", "/limits", {"request_weight_per_minute": 2400})
    key = (await paper.client("alice").fapiPrivatePostListenKey())["listenKey"]
    async with aiohttp.ClientSession() as session:
        for _ in range(2):
            async with session.ws_connect(f"{paper.url.replace('http', 'ws')}/ws/{key}") as ws:
                await ws.close()
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await session.ws_connect(f"{paper.url.replace('http', 'ws')}/ws/{key}")
        assert caught.value.status == 429

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.daemon_harness import kill_leftovers
from tests.paper_harness import Paper, running_paper

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
SOL = "SOL/USDT:USDT"


def market_order(cid: str, qty: str = "0.01", **extra: str) -> dict[str, str]:
    """The parameters of a new ETHUSDT market buy as the venue sends them (POST order)."""
    return {
        "symbol": "ETHUSDT",
        "side": "BUY",
        "type": "MARKET",
        "quantity": qty,
        "newClientOrderId": cid,
        "newOrderRespType": "RESULT",
        **extra,
    }


@pytest.fixture
async def paper() -> AsyncIterator[Paper]:
    async with running_paper() as running:
        yield running


@pytest.fixture(autouse=True)
async def no_daemon_outlives_its_test() -> AsyncIterator[None]:
    """A test that fails half-way leaves no `bot run` process behind (it would trade on, unwatched)."""
    yield
    await kill_leftovers()

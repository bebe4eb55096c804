from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.paper_harness import Paper, running_paper

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
SOL = "SOL/USDT:USDT"


@pytest.fixture
async def paper() -> AsyncIterator[Paper]:
    async with running_paper() as running:
        yield running

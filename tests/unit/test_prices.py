"""A lead change's fresh mark read ahead (`MarkPrices.read_ahead`): started as the change is detected, it is the
one read the change's plans join, not one more; its failure is theirs, and a read nobody joined is no error."""

from __future__ import annotations

import asyncio
import gc
from decimal import Decimal
from typing import Any

import pytest

from bot.engine.clock import SystemClock
from bot.engine.prices import MarkPrices
from bot.venue.errors import Temporary

D = Decimal


class GatedVenue:
    """Answers a mark read once let through; counts the reads (one edge: MarkPrices' requests)."""

    def __init__(self) -> None:
        self.reads: list[str] = []
        self.release = asyncio.Event()
        self.fail = False

    async def mark_price(self, symbol: str) -> Decimal:
        self.reads.append(symbol)
        await self.release.wait()
        if self.fail:
            raise Temporary("premiumIndex: 503")
        return D(3000)


def streaming(venue: GatedVenue) -> tuple[MarkPrices, int]:
    clock = SystemClock()
    prices = MarkPrices(venue, clock)  # type: ignore[arg-type]
    prices.update({"ETHUSDT": D(2900), "BTCUSDT": D(50000)})  # the stream is up: only the plan's symbol is read
    return prices, clock.now_ms()


async def test_the_plans_of_a_change_join_the_read_started_when_it_was_detected() -> None:
    venue = GatedVenue()
    prices, detected = streaming(venue)
    prices.read_ahead("ETHUSDT")
    await asyncio.sleep(0)
    assert venue.reads == ["ETHUSDT"]  # on its way before any plan asks
    plans = [asyncio.ensure_future(prices.for_plan("ETHUSDT", detected)) for _ in range(3)]
    prices.read_ahead("ETHUSDT")  # again while it is out: nothing more
    venue.release.set()
    marks = await asyncio.wait_for(asyncio.gather(*plans), 5)
    assert venue.reads == ["ETHUSDT"] and all(m["ETHUSDT"] == D(3000) for m in marks)


async def test_a_read_ahead_that_fails_fails_the_plans_that_joined_it_and_the_next_plan_reads_again() -> None:
    venue = GatedVenue()
    prices, detected = streaming(venue)
    venue.fail = True
    prices.read_ahead("ETHUSDT")
    plan = asyncio.ensure_future(prices.for_plan("ETHUSDT", detected))
    venue.release.set()
    with pytest.raises(Temporary):
        await asyncio.wait_for(plan, 5)
    venue.fail = False
    assert (await prices.for_plan("ETHUSDT", detected))["ETHUSDT"] == D(3000)
    assert venue.reads == ["ETHUSDT", "ETHUSDT"]


async def test_a_read_ahead_nobody_joined_is_no_error_when_it_fails() -> None:
    venue = GatedVenue()
    prices, _ = streaming(venue)
    reported: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: reported.append(context))
    venue.fail = True
    venue.release.set()
    prices.read_ahead("BTCUSDT")
    for _ in range(20):
        await asyncio.sleep(0)
    assert venue.reads == ["BTCUSDT"] and prices.known()["BTCUSDT"] == D(50000)
    gc.collect()  # a failed future never looked at is reported when it is collected: this one was looked at
    assert reported == []

"""Mark prices shared by every follower's sizing: one request serves a whole fan-out."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from bot.engine.clock import Clock
from bot.venue.ccxt_venue import AccountVenue


class MarkPrices:
    def __init__(self, venue: AccountVenue, clock: Clock, max_age_ms: int = 250) -> None:
        self._venue = venue
        self._clock = clock
        self._max_age_ms = max_age_ms
        self._marks: dict[str, Decimal] = {}
        self._at = -1
        self._lock = asyncio.Lock()

    async def get(self) -> dict[str, Decimal]:
        async with self._lock:  # single flight: concurrent followers share one request
            if self._clock.now_ms() - self._at > self._max_age_ms:
                self._marks = await self._venue.mark_prices()
                self._at = self._clock.now_ms()
            return self._marks

"""Mark prices. Sizing reads them fresh by REST, one request for a whole fan-out (single flight, at most every
`max_age_ms`): the slippage guard compares the lead's fill with the price the follower is about to pay, and a
stream up to a second old would let a jump through. Everything else (the lead's leverage check; the stop loss
next, issue #10) reads the exchange's mark-price stream while it is fresh, with no request."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from bot.engine.clock import Clock
from bot.venue.ccxt_venue import AccountVenue

STREAM_FRESH_MS = 3000  # the stream pushes every second; older than this, REST takes over


class MarkPrices:
    def __init__(self, venue: AccountVenue, clock: Clock, max_age_ms: int = 250) -> None:
        self._venue = venue
        self._clock = clock
        self._max_age_ms = max_age_ms
        self._marks: dict[str, Decimal] = {}
        self._at = -1
        self._streamed_at = -1
        self._lock = asyncio.Lock()
        self.rest_reads = 0

    def update(self, marks: dict[str, Decimal]) -> None:
        """Marks pushed by the stream."""
        self._marks = {**self._marks, **marks}
        self._streamed_at = self._clock.now_ms()

    async def latest(self) -> dict[str, Decimal]:
        """The streamed marks while the stream is fresh, else `get()`."""
        if self._clock.now_ms() - self._streamed_at <= STREAM_FRESH_MS:
            return self._marks
        return await self.get()

    async def get(self) -> dict[str, Decimal]:
        """Fresh marks by REST (for sizing), shared by every caller within `max_age_ms`."""
        async with self._lock:  # single flight: concurrent followers share one request
            if self._clock.now_ms() - self._at > self._max_age_ms:
                self._marks = {**self._marks, **await self._venue.mark_prices()}
                self._at = self._clock.now_ms()
                self.rest_reads += 1
            return self._marks

"""Mark prices (SPEC 12). The exchange's mark-price stream feeds everything that needs no more than the last
second (the stop loss, the lead's leverage check, the marks of positions a plan is not about), with no request;
while the stream is down, REST takes over at a bounded rate. A plan's own symbol is read fresh by REST (weight
1), once for a whole fan-out: the slippage guard compares the lead's fill with the price the follower is about
to pay, and a stream up to a second old would let a jump through."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal

from bot.engine.clock import Clock
from bot.venue.budget import Priority
from bot.venue.ccxt_venue import AccountVenue

STREAM_FRESH_MS = 3000  # the stream pushes every second; older than this, REST takes over
FALLBACK_MS = 2000  # REST for every mark (weight 10) at most this often while the stream is down: 300 a minute
FUNDINGS_KEPT_MS = 3 * 24 * 3600 * 1000  # longer than any reconciliation interval
SYMBOL_MAX_AGE_MS = 1000  # a read of a plan's symbol serves every plan for a change detected before it, this long


class MarkPrices:
    def __init__(self, venue: AccountVenue, clock: Clock, on_update: Callable[[], None] | None = None) -> None:
        self._venue = venue
        self._clock = clock
        self._on_update = on_update
        self._marks: dict[str, Decimal] = {}
        self._streamed_at = -1
        self._all_at = -1  # the last REST read of every mark
        self._symbol_read: dict[str, int] = {}  # symbol -> when its mark was last read by REST
        self._in_flight: dict[str, asyncio.Future[None]] = {}
        self._funding: dict[str, tuple[Decimal, int]] = {}  # symbol -> (rate, next funding time ms)
        self._fundings: dict[tuple[str, int], tuple[Decimal, Decimal]] = {}  # (symbol, time) -> (rate, mark)
        # asked by every follower's estimate on every change: most of the time nothing is due since its base
        self._last_funding_ms = -1  # the latest funding seen to take place
        self._next_due_ms = -1  # the earliest advertised funding time

    def update(self, marks: dict[str, Decimal], funding: dict[str, tuple[Decimal, int]] | None = None) -> None:
        """Marks (and funding rates with the next funding time) pushed by the stream. A next funding time that
        moves on means a funding took place at the previous one, at the rate advertised before it."""
        self._marks = {**self._marks, **marks}
        now = self._clock.now_ms()
        self._streamed_at = now
        for symbol, (rate, next_ms) in (funding or {}).items():
            before = self._funding.get(symbol)
            if before is not None and next_ms > before[1] and symbol in self._marks:
                self._fundings[(symbol, before[1])] = (before[0], self._marks[symbol])
                self._last_funding_ms = max(self._last_funding_ms, before[1])
            self._funding[symbol] = (rate, next_ms)
        if funding:
            self._next_due_ms = min(next_ms for _, next_ms in self._funding.values())
            for key in [k for k in self._fundings if k[1] < now - FUNDINGS_KEPT_MS]:
                del self._fundings[key]
        if self._on_update is not None:
            self._on_update()

    def fundings_since(self, since_ms: int) -> list[tuple[str, int, Decimal, Decimal]]:
        """(symbol, time, rate, mark) of every funding after `since_ms` until now: those seen to take place,
        and those whose advertised time has come though the stream has not moved on yet."""
        now = self._clock.now_ms()
        events = {}
        if since_ms < self._last_funding_ms:
            events = {key: value for key, value in self._fundings.items() if key[1] > since_ms}
        if self._next_due_ms <= now:
            for symbol, (rate, next_ms) in self._funding.items():
                if since_ms < next_ms <= now and (symbol, next_ms) not in events and symbol in self._marks:
                    events[(symbol, next_ms)] = (rate, self._marks[symbol])
        return [(symbol, at, rate, mark) for (symbol, at), (rate, mark) in sorted(events.items())]

    def known(self) -> dict[str, Decimal]:
        """The marks in hand, however old, with no request."""
        return self._marks

    @property
    def streaming(self) -> bool:
        return self._clock.now_ms() - self._streamed_at <= STREAM_FRESH_MS

    async def latest(self) -> dict[str, Decimal]:
        """The streamed marks while the stream is fresh; else every mark by REST, at most every FALLBACK_MS
        (between two reads, the last one: at most that old). That read is on the order path (the plans' sizing
        and the stop loss depend on it: it never waits behind reads in the request budget, as when a start's
        activations have used the minute before the stream's first update); FALLBACK_MS bounds it to 300
        weight a minute."""
        if not self.streaming and self._clock.now_ms() - self._all_at >= FALLBACK_MS:
            await self._shared("*", self._read_all)
        return self._marks

    async def for_plan(self, symbol: str, detected_ms: int | None = None) -> dict[str, Decimal]:
        """Every mark as `latest()`, with `symbol`'s read by REST (weight 1) after the lead change the plan is for
        was detected (`detected_ms`) and at most SYMBOL_MAX_AGE_MS ago: one request serves every follower's
        plan for a change, and a follower planning late reads again at most once a second for all."""
        marks = await self.latest()
        for _ in range(2):  # a read already on its way may have been sent before the change was detected
            read_at = self._symbol_read.get(symbol, -(10**12))
            if read_at >= (detected_ms or 0) and self._clock.now_ms() - read_at <= SYMBOL_MAX_AGE_MS:
                break
            await self._shared(symbol, lambda: self._read_one(symbol))
            marks = self._marks
        return marks

    def read_ahead(self, symbol: str) -> None:
        """Starts the read `for_plan` will make for a lead change just detected in `symbol`, now: it is on its
        way while the fan-out picks its followers, and their plans join it (started before the fan-out is woken,
        the request leaves first). Its failure, if any, is theirs to see."""
        if symbol not in self._in_flight:
            self._start(symbol, lambda: self._read_one(symbol)).add_done_callback(_retrieved)

    async def _shared(self, key: str, read: Callable[[], Awaitable[None]]) -> None:
        """Single flight: callers asking while a read is out wait for that read (and share its failure)."""
        await asyncio.shield(self._in_flight.get(key) or self._start(key, read))

    def _start(self, key: str, read: Callable[[], Awaitable[None]]) -> asyncio.Future[None]:
        pending = self._in_flight[key] = asyncio.ensure_future(read())
        pending.add_done_callback(lambda _: self._in_flight.pop(key, None))
        return pending

    async def _read_all(self) -> None:
        self._marks = {**self._marks, **await self._venue.mark_prices(Priority.ORDER)}
        self._all_at = self._clock.now_ms()

    async def _read_one(self, symbol: str) -> None:
        sent = self._clock.now_ms()
        self._marks = {**self._marks, symbol: await self._venue.mark_price(symbol)}
        self._symbol_read[symbol] = sent


def _retrieved(read: asyncio.Future[None]) -> None:
    """A read ahead nobody joined: its failure is not an error of its own (the plans that need it read again)."""
    if not read.cancelled():
        read.exception()

"""The lead source: REST polling of the lead's positions and equity, turned into numbered lead changes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from bot.core.model import ZERO, lead_fill_price
from bot.engine.clock import Clock
from bot.engine.prices import MarkPrices
from bot.store.db import Store
from bot.store.rows import StoredChange
from bot.venue.ccxt_venue import AccountVenue
from bot.venue.errors import Fatal, VenueError
from bot.venue.stream import Outage, PositionStream

LEAD_LEVERAGE_LOCK = Decimal(5)


class LeadPoller:
    def __init__(
        self,
        venue: AccountVenue,
        store: Store,
        prices: MarkPrices,
        clock: Clock,
        log: Any,
        on_change: Callable[[], None],
        poll_interval_s: float,
        on_poll: Callable[[], None] | None = None,
        auth_grace_s: float = 300.0,
    ) -> None:
        self.venue = venue
        self.store = store
        self.prices = prices
        self.clock = clock
        self.log = log.bind(account="lead")
        self.on_change = on_change
        self.poll_interval_s = poll_interval_s
        self.on_poll = on_poll or (lambda: None)
        self.auth_grace_s = auth_grace_s
        self.gone_reason: str | None = None
        self._auth_failing_since: int | None = None
        self.last_poll_ms = 0
        self.polls = 0
        self._over_leveraged = False
        self.interval_s = poll_interval_s  # a stream lead source lowers the REST rate while it is connected
        self._polling = asyncio.Lock()

    async def baseline(self) -> None:
        """At the very first start the lead's positions are the baseline, not changes to copy."""
        if self.store.has_lead_baseline():
            return
        positions, equity = await self.venue.lead_read()
        now = self.clock.now_ms()
        self.store.record_equity("lead", equity, now)
        self.store.set_lead_baseline(positions, now)
        self.log.info(
            "lead_baseline_recorded", lead_equity=equity, positions={s: str(q) for s, (q, _) in positions.items()}
        )

    async def poll_once(self) -> list[StoredChange]:
        """Reads the lead by REST and records what changed. Serialized: the stream and the timer never race."""
        async with self._polling:
            return await self._poll()

    async def _poll(self) -> list[StoredChange]:
        since = self.last_poll_ms
        positions, equity = await self.venue.lead_read()
        now = self.clock.now_ms()
        self.last_poll_ms = now
        self.polls += 1
        self.store.record_equity("lead", equity, now)
        known = self.store.lead_positions()
        changes = []
        for symbol in sorted(set(known) | set(positions)):
            prev, entry_prev = known.get(symbol, (ZERO, ZERO))
            current, entry_now = positions.get(symbol, (ZERO, ZERO))
            if prev != current:
                fill = await self.fill_price(symbol, (prev, entry_prev), (current, entry_now), since, now)
                changes.append((symbol, prev, current, entry_prev, entry_now, fill))
        stored = self.store.record_lead_changes(changes, equity, now) if changes else []
        for item in stored:
            c = item.change
            self.log.info(
                "lead_position_changed",
                lead_change=c.seq,
                symbol=c.symbol,
                prev=c.prev,
                now=c.now,
                kind=c.kind,
                fill_price=c.fill_price,
                lead_equity=equity,
            )
        if stored:
            for item in stored:  # the plans' fresh mark, on its way before the fan-out is woken
                self.prices.read_ahead(item.change.symbol)
            self.on_change()
            await self._check_leverage(positions, equity)
        return stored

    async def fill_price(
        self, symbol: str, before: tuple[Decimal, Decimal], after: tuple[Decimal, Decimal], since_ms: int, now_ms: int
    ) -> Decimal | None:
        """The lead's fill price of what it opened: on futures from its average entry prices (SPEC 3)."""
        return lead_fill_price(before[0], before[1], after[0], after[1])

    async def _check_leverage(self, positions: dict[str, tuple[Decimal, Decimal]], equity: Decimal) -> None:
        marks = await self.prices.latest()
        gross = sum((abs(q) * marks.get(s, e) for s, (q, e) in positions.items()), ZERO)
        over = equity > 0 and gross > LEAD_LEVERAGE_LOCK * equity
        if over and not self._over_leveraged:
            self.log.warning(
                "lead_leverage_exceeded",
                gross_notional=gross,
                lead_equity=equity,
                leverage=(gross / equity).quantize(Decimal("0.01")),
            )
        self._over_leveraged = bool(over)

    async def run(self, stopping: asyncio.Event) -> None:
        backoff = self.interval_s
        while not stopping.is_set():
            try:
                await self.poll_once()
                backoff = self.interval_s
                self._auth_failing_since = None
            except Fatal as exc:
                now = self.clock.now_ms()
                self._auth_failing_since = self._auth_failing_since or now
                failing_s = (now - self._auth_failing_since) / 1000
                self.log.error("lead_poll_failed", error=str(exc), failing_for_s=failing_s)
                if failing_s >= self.auth_grace_s:
                    self.gone_reason = f"the lead's key has failed for {failing_s:.0f}s"
                    self.on_poll()
                    return
                backoff = min(backoff * 2, 5.0)
            except VenueError as exc:
                self.log.error("lead_poll_failed", error=str(exc))
                backoff = min(backoff * 2, 30.0)
            self.on_poll()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=backoff)


class LeadStream:
    """`lead_source = "stream"`: the lead's user data stream wakes the lead poller at once.

    REST stays the truth: every stream event is confirmed by a REST read of the lead's positions before
    anything is copied, and REST runs right after any stream error or reconnect and every
    `reconcile_interval_s`, so a change made while the stream was down is still copied, once. While the
    stream is down the poller falls back to `poll_interval_s`.
    """

    def __init__(
        self,
        open_stream: Callable[[], PositionStream],
        poller: LeadPoller,
        clock: Clock,
        log: Any,
        reconcile_interval_s: float,
    ) -> None:
        self.open_stream = open_stream
        self.poller = poller
        self.clock = clock
        self.log = log.bind(account="lead")
        self.reconcile_interval_s = reconcile_interval_s

    async def run(self, stopping: asyncio.Event) -> None:
        backoff = 0.5
        outage = Outage("stream", self.clock.now_ms, self.log)
        while not stopping.is_set():
            stream = self.open_stream()
            try:
                await stream.next_change(stopping)  # the first watch subscribes (after a REST snapshot)
                outage.up()
                self.poller.interval_s = self.reconcile_interval_s
                await self.poller.poll_once()  # whatever happened while connecting or down
                backoff = 0.5
                while not stopping.is_set():
                    await stream.next_change(stopping)
                    await self.poller.poll_once()
            except VenueError as exc:
                if stopping.is_set():
                    break
                self.poller.interval_s = self.poller.poll_interval_s
                outage.down(str(exc))
                with contextlib.suppress(VenueError):
                    await self.poller.poll_once()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                await stream.close()

"""Sending exactly once (SPEC 4): an intent is durable before its order leaves, an unknown outcome is looked
up by client order id and re-sent (same id) only once the exchange says it does not exist, and an order the
exchange still holds open is followed until it is final."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bot.core.ids import client_order_id
from bot.core.model import OPEN_STATUSES, IntentStatus, Leg, Market, Plan, PlanKind, PlanRecord
from bot.engine.clock import Clock
from bot.engine.journal import PlanJournal
from bot.store.db import Store
from bot.store.rows import IntentRow
from bot.venue.ccxt_venue import AccountVenue, OrderResult
from bot.venue.errors import Rejected, Temporary, UnknownOutcome

# kinds whose fills move the expected position; corrections and close-outs set it explicitly once done
MOVES_EXPECTED = (PlanKind.COPY, PlanKind.BOOTSTRAP, PlanKind.RELEASE)

SEND_ATTEMPTS = 8
FOLLOW_ATTEMPTS = 6  # looks at an order the exchange holds open before the worker moves on and comes back


class OpensHalted(Exception):
    """A close-out was requested while an open was being driven: it is left for the close-out to abandon."""


@dataclass(slots=True)
class OrderConfig:
    max_leverage: Decimal | None  # set before an open (futures); None: the market has no leverage (spot)
    moves_expected: tuple[str, ...] = MOVES_EXPECTED  # spot: every kind (a copy holding is what fills add up to)


class OrderSender:
    """One follower's orders. Everything it sends is journaled in the store first."""

    def __init__(
        self, name: str, venue: AccountVenue, store: Store, clock: Clock, config: OrderConfig, log: Any
    ) -> None:
        self.name = name
        self.venue = venue
        self.store = store
        self.clock = clock
        self.config = config
        self.log = log
        self.journal: PlanJournal | None = None  # shared group commit, set by the runtime
        self._sent_fresh: set[int] = set()  # intents planned by this process: never sent before it
        self.opens_halted = False  # set when a close-out is requested: no open leaves after that

    @property
    def number(self) -> int:
        row = self.store.follower(self.name)
        assert row is not None and row.number > 0, f"{self.name} has no follower number"
        return row.number

    def record_of(self, kind: PlanKind, plan_number: int, plan: Plan) -> PlanRecord:
        """A plan as it is journaled: each intent with its client order id."""
        follower = self.number
        intents = [
            (i, client_order_id(self.store.epoch, follower, kind, plan_number, idx))
            for idx, i in enumerate(plan.intents)
        ]
        return PlanRecord(self.name, kind, plan_number, intents, tuple(plan.skips), self.clock.now_ms())

    async def journal_plan(self, kind: PlanKind, plan_number: int, plan: Plan) -> None:
        """Makes a plan durable (group commit with the other followers planning now) before anything is sent."""
        record = self.record_of(kind, plan_number, plan)
        if self.journal is not None:
            rows = await self.journal.record(record)
        else:
            (rows,) = self.store.record_plans([record])
        self.journaled(record, plan, rows)

    def journaled(self, record: PlanRecord, plan: Plan, rows: list[IntentRow]) -> None:
        """A plan is durable: its intents may be sent at once (no lookup first), its skips and clips logged."""
        self._sent_fresh.update(r.id for r in rows)
        for skip in plan.skips:
            self.log.info(skip.event, symbol=skip.symbol, **record.kind.fields(record.number), **skip.detail)
        for clip in plan.clipped:
            self.log.info(plan.clip_event, **record.kind.fields(record.number), **clip)

    async def execute(self, kind: PlanKind, plan_number: int) -> None:
        await self.send(self.store.intents_of(self.name, kind, plan_number))

    async def send(self, rows: list[IntentRow]) -> None:
        """Drives a plan's intents (as journaled, or as last read) to final states, one after the other."""
        for row in rows:
            if row.status in OPEN_STATUSES:
                await self.drive(row)

    async def resolve_unfinished(self) -> None:
        for row in self.store.unresolved_intents(self.name):
            await self.drive(row)

    async def drive(self, row: IntentRow) -> None:
        """Drives one intent to a final state. An intent that may have reached the exchange is looked up by
        its client order id first, and sent again (same id) only once the exchange confirms it does not exist.
        A 429/418 is honoured: nothing goes to the exchange before its Retry-After."""
        fresh = row.id in self._sent_fresh and row.status == IntentStatus.PENDING
        self._sent_fresh.discard(row.id)
        if not fresh:
            found = await self.venue.lookup(row.intent.symbol, row.client_order_id)
            if found is not None:
                await self._follow(row, found)
                return
        pause = 0.5
        for _ in range(SEND_ATTEMPTS):
            if self.opens_halted and row.intent.leg is Leg.OPEN:
                raise OpensHalted(row.client_order_id)
            try:
                result = await self._send(row)
            except UnknownOutcome as exc:
                self.store.mark_unknown(row.id, str(exc), self.clock.now_ms())
                wait = max(pause, exc.retry_after or 0.0)
                self.log.warning(
                    "order_outcome_unknown",
                    symbol=row.intent.symbol,
                    client_order_id=row.client_order_id,
                    error=str(exc),
                    lookup_in_s=wait,
                )
                await asyncio.sleep(wait)
                pause = min(pause * 2, 8.0)
                found = await self.venue.lookup(row.intent.symbol, row.client_order_id)
                if found is not None:
                    await self._follow(row, found)
                    return
                continue
            except Rejected as exc:
                self.store.mark_rejected(row.id, str(exc), self.clock.now_ms())
                self.log.error(
                    "follower_order_rejected",
                    symbol=row.intent.symbol,
                    side=row.intent.side,
                    qty=row.intent.qty,
                    client_order_id=row.client_order_id,
                    error=str(exc),
                )
                return
            await self._follow(row, result)
            return
        raise Temporary(f"{self.name}: order {row.client_order_id} still unresolved")

    async def _follow(self, row: IntentRow, result: OrderResult) -> None:
        """Records a final order; one the exchange still holds open (NEW, PARTIALLY_FILLED) stays `working`
        and is looked at again until it is final: its later fills are the follower's position too."""
        pause = 0.2
        for _ in range(FOLLOW_ATTEMPTS):
            if result.status != "open":
                self._record(row, result)
                return
            if row.status != IntentStatus.WORKING:
                self.store.mark_working(row.id, result.order_id, self.clock.now_ms())
                self.log.info(
                    "follower_order_working",
                    symbol=row.intent.symbol,
                    client_order_id=row.client_order_id,
                    order_id=result.order_id,
                    filled=result.filled,
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)
            found = await self.venue.lookup(row.intent.symbol, row.client_order_id)
            if found is None:
                raise Temporary(f"{self.name}: order {row.client_order_id} was open and is not found")
            result = found
        raise Temporary(f"{self.name}: order {row.client_order_id} is still open on the exchange")

    async def _send(self, row: IntentRow) -> OrderResult:
        intent = row.intent
        if intent.leg is Leg.OPEN and self.config.max_leverage is not None:
            await self._ensure_leverage(intent.symbol, self.config.max_leverage)
        self.log.debug(  # one line per order at info: its outcome
            "follower_order_submitted",
            symbol=intent.symbol,
            side=intent.side,
            qty=intent.qty,
            reduce_only=intent.reduce_only,
            leg=intent.leg.value,
            client_order_id=row.client_order_id,
            **row.kind.fields(row.number),
        )
        return await self.venue.place(intent.symbol, intent.side, intent.qty, intent.reduce_only, row.client_order_id)

    async def _ensure_leverage(self, symbol: str, leverage: Decimal) -> None:
        if self.store.leverage_set(self.name, symbol) != leverage:
            await self.venue.set_leverage(symbol, leverage)
            self.store.record_leverage(self.name, symbol, leverage)

    def _record(self, row: IntentRow, result: OrderResult) -> None:
        status = (
            IntentStatus.FILLED
            if result.filled == row.intent.qty
            else (IntentStatus.PARTIAL if result.filled else IntentStatus.EXPIRED)
        )
        self.store.record_outcome(
            row,
            status,
            result.order_id,
            result.filled,
            result.average,
            self.clock.now_ms(),
            update_position=row.kind in self.config.moves_expected,
            fee_base=result.fee_base,
            fee_quote=result.fee_quote,
        )
        self.log.info(
            "follower_order_filled",
            symbol=row.intent.symbol,
            side=row.intent.side,
            qty=result.filled,
            price=result.average,
            status=status,
            order_id=result.order_id,
            client_order_id=row.client_order_id,
            **row.kind.fields(row.number),
        )


class FollowerPart:
    """What a part of one follower's mirror works with: its order sender (and through it the follower's name,
    venue, store, clock and log) and the markets."""

    def __init__(self, orders: OrderSender, markets: Mapping[str, Market]) -> None:
        self.orders = orders
        self.markets = markets
        self.name = orders.name
        self.venue = orders.venue
        self.store = orders.store
        self.clock = orders.clock
        self.log = orders.log

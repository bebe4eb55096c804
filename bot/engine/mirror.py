"""One follower's mirror: plan each lead change, journal it, send it once, record what happened (SPEC 3-5)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from bot.core.ids import client_order_id, follower_tag
from bot.core.model import ZERO, FollowerView, Intent, Leg, Market, Plan
from bot.core.risk import stop_loss_hit, stop_loss_threshold
from bot.core.sync import plan_bootstrap, plan_change, plan_correction
from bot.engine.clock import Clock
from bot.engine.journal import PlanJournal
from bot.engine.prices import MarkPrices
from bot.settings import FollowerSettings
from bot.store.db import IntentRow, Store, StoredChange
from bot.venue.ccxt_venue import AccountVenue, OrderResult
from bot.venue.errors import Rejected, Temporary, UnknownOutcome

LOOKUP_ATTEMPTS = 8


@dataclass(slots=True)
class MirrorConfig:
    max_leverage: Decimal
    equity_max_age_ms: int = 5000  # for sizing
    stop_loss_max_age_ms: int = 1000  # for the stop-loss check: every poll


class FollowerMirror:
    """Copies lead changes to one follower account. Everything it does is journaled in the store first."""

    def __init__(
        self,
        settings: FollowerSettings,
        venue: AccountVenue,
        store: Store,
        markets: Mapping[str, Market],
        prices: MarkPrices,
        clock: Clock,
        config: MirrorConfig,
        log: Any,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.venue = venue
        self.store = store
        self.markets = markets
        self.prices = prices
        self.clock = clock
        self.config = config
        self.log = log.bind(follower=self.name)
        self._sent_fresh: set[int] = set()  # intents planned by this process: never sent before it
        self._equity: tuple[Decimal, int] | None = None
        self.end_request: tuple[str, str] | None = None  # (state, reason): close out and stop, in the worker
        self.journal: PlanJournal | None = None  # shared group commit, set by the runtime
        # each follower refreshes its equity for the stop loss on its own phase, between 1 and 1.5 polls, so
        # that hundreds of balance requests never line up with (and slow) a fan-out
        spread = int(follower_tag(self.name), 16) / 0xFFFF / 2
        self._stop_loss_age_ms = int(config.stop_loss_max_age_ms * (1 + spread))

    # -- activation -------------------------------------------------------------------------------

    async def activate(self, config_hash: str = "") -> bool:
        """(Re)activates the follower once it is admitted. False when its configuration cannot run."""
        equity = await self.venue.equity()
        if self.settings.investment > equity:
            self.log.error(
                "follower_config_error",
                reason="investment above the account equity at start",
                investment=self.settings.investment,
                account_equity=equity,
            )
            self.store.set_follower_state(self.name, "config_error", "investment above the account equity")
            return False
        row = self.store.activate_follower(
            self.name, self.settings.investment, equity, self.settings.copy_existing, self.clock.now_ms(), config_hash
        )
        self._equity = None
        self.log.info(
            "follower_activated",
            investment=row.investment,
            reserve=row.reserve,
            account_equity=equity,
            copy_existing=self.settings.copy_existing,
            from_lead_change=row.last_seq,
            waiting_for_flat=sorted(self.store.ignored(self.name)),
        )
        return True

    async def copy_equity(self, fresh: bool = False, max_age_ms: int | None = None) -> Decimal:
        now = self.clock.now_ms()
        limit = self.config.equity_max_age_ms if max_age_ms is None else max_age_ms
        if fresh or self._equity is None or now - self._equity[1] > limit:
            equity = await self.venue.equity()
            self._equity = (equity, now)
            self.store.record_equity(self.name, equity, now)
        row = self.store.follower(self.name)
        assert row is not None
        return self._equity[0] - row.reserve

    def _view(self, copy_equity: Decimal) -> FollowerView:
        return FollowerView(
            self.name,
            copy_equity,
            self.store.follower_positions(self.name),
            self.config.max_leverage,
            self.settings.max_slippage_pct,
        )

    def _wanted(self, symbol: str) -> bool:
        return symbol in self.markets and (not self.settings.symbols or symbol in self.settings.symbols)

    # -- the main step ----------------------------------------------------------------------------

    async def catch_up(self, stopping: asyncio.Event) -> int:
        """Resolves unfinished intents, copies existing positions once, then every lead change not yet copied."""
        await self.resolve_unfinished()
        row = self.store.follower(self.name)
        assert row is not None
        if not row.bootstrapped:
            await self._bootstrap()
        copied = 0
        for stored in self.store.changes_after(row.last_seq):
            if stopping.is_set():
                break
            await self.copy(stored)
            copied += 1
        return copied

    async def _bootstrap(self) -> None:
        kind, seq = "b", 0
        if self.settings.copy_existing and not self.store.has_plan(self.name, kind, seq):
            lead = {s: q for s, q in self.store.bootstrap_positions(self.name).items() if self._wanted(s)}
            if lead:
                equity = self.store.equity("lead")
                lead_equity = equity[0] if equity else ZERO
                plan = plan_bootstrap(
                    lead, lead_equity, self._view(await self.copy_equity()), self.markets, await self.prices.get()
                )
                await self._journal(kind, seq, plan)
        await self._execute(kind, seq)
        self.store.mark_bootstrapped(self.name)

    async def copy(self, stored: StoredChange) -> None:
        change = stored.change
        symbol = change.symbol
        unignore = None
        if symbol in self.store.ignored(self.name):
            unignore = symbol if change.now == 0 else None  # copying resumes once the lead is flat there
        elif self._wanted(symbol):
            if not self.store.has_plan(self.name, "c", change.seq):
                marks = await self.prices.get()
                view = self._view(await self.copy_equity())
                plan = plan_change(change, stored.lead_equity, view, self.markets[symbol], marks)
                await self._journal("c", change.seq, plan)
            await self._execute("c", change.seq)
        self.store.advance(self.name, change.seq, unignore=unignore)

    async def _journal(self, kind: str, seq: int, plan: Plan) -> None:
        epoch = self.store.epoch
        intents = [(i, client_order_id(epoch, self.name, kind, seq, idx)) for idx, i in enumerate(plan.intents)]
        record = (self.name, kind, seq, intents, tuple(plan.skips), self.clock.now_ms())
        if self.journal is not None:
            await self.journal.record(record)
        else:
            self.store.record_plans([record])
        self._sent_fresh.update(r.id for r in self.store.intents_of(self.name, kind, seq))
        for skip in plan.skips:
            self.log.info(skip.event, symbol=skip.symbol, lead_change=seq, kind=kind, **skip.detail)
        for clip in plan.clipped:
            self.log.info("sync_clipped_by_leverage", lead_change=seq, **clip)

    async def _execute(self, kind: str, seq: int) -> None:
        for row in self.store.intents_of(self.name, kind, seq):
            if row.status in ("pending", "unknown"):
                await self._settle(row)

    # -- sending exactly once ---------------------------------------------------------------------

    async def resolve_unfinished(self) -> None:
        for row in self.store.unresolved_intents(self.name):
            await self._settle(row)

    async def _settle(self, row: IntentRow) -> None:
        """Drives one intent to a final state. An intent that may have reached the exchange is looked up by
        its client order id first, and sent again (same id) only once the exchange confirms it does not exist."""
        fresh = row.id in self._sent_fresh and row.status == "pending"
        self._sent_fresh.discard(row.id)
        if not fresh:
            found = await self._lookup(row)
            if found is not None:
                self._record(row, found)
                return
        for _ in range(LOOKUP_ATTEMPTS):
            try:
                result = await self._send(row)
            except UnknownOutcome as exc:
                self.store.mark_unknown(row.id, str(exc), self.clock.now_ms())
                self.log.warning(
                    "order_outcome_unknown",
                    symbol=row.intent.symbol,
                    client_order_id=row.client_order_id,
                    error=str(exc),
                )
                await asyncio.sleep(0.5)
                found = await self._lookup(row)
                if found is not None:
                    self._record(row, found)
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
            self._record(row, result)
            return
        raise Temporary(f"{self.name}: order {row.client_order_id} still unresolved")

    async def _lookup(self, row: IntentRow) -> OrderResult | None:
        return await self.venue.lookup(row.intent.symbol, row.client_order_id)

    async def _send(self, row: IntentRow) -> OrderResult:
        intent = row.intent
        if intent.leg is Leg.OPEN:
            await self._ensure_leverage(intent.symbol)
        self.log.info(
            "follower_order_submitted",
            symbol=intent.symbol,
            side=intent.side,
            qty=intent.qty,
            reduce_only=intent.reduce_only,
            leg=intent.leg.value,
            lead_change=row.seq,
            kind=row.kind,
            client_order_id=row.client_order_id,
        )
        return await self.venue.place(intent.symbol, intent.side, intent.qty, intent.reduce_only, row.client_order_id)

    async def _ensure_leverage(self, symbol: str) -> None:
        if self.store.leverage_set(self.name, symbol) != self.config.max_leverage:
            await self.venue.set_leverage(symbol, self.config.max_leverage)
            self.store.record_leverage(self.name, symbol, self.config.max_leverage)

    def _record(self, row: IntentRow, result: OrderResult) -> None:
        status = "filled" if result.filled == row.intent.qty else ("partial" if result.filled else "expired")
        self.store.record_outcome(
            row,
            status,
            result.order_id,
            result.filled,
            result.average,
            self.clock.now_ms(),
            # copies, the bootstrap and investment decreases move the expected position; corrections
            # and close-outs set it explicitly once done
            update_position=row.kind in ("c", "b", "i"),
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
            lead_change=row.seq,
            kind=row.kind,
        )

    # -- reconciliation ---------------------------------------------------------------------------

    async def reconcile(self) -> int:
        """SPEC section 5: the exchange against what our own fills add up to. Returns corrections made."""
        await self.resolve_unfinished()
        actual = {s: q for s, (q, _) in (await self.venue.positions()).items()}
        expected = self.store.follower_positions(self.name)
        lead = self.store.lead_positions()
        row = self.store.follower(self.name)
        caught_up = row is not None and row.last_seq >= self.store.last_seq()
        corrections = 0
        ours = f"cb-{self.store.epoch}-"
        for symbol, order_id, cid in await self.venue.open_orders():
            if not cid.startswith(ours):
                self.log.warning(
                    "manual_intervention_detected", symbol=symbol, kind="foreign_open_order", order_id=order_id
                )
                await self.venue.cancel(symbol, order_id)
                corrections += 1
        seq = self.clock.now_ms()
        for symbol in sorted(set(actual) | set(expected)):
            if symbol not in self.markets:
                continue
            # a position where the lead is flat is closed, once this follower has copied every lead change
            lead_flat = symbol not in lead and caught_up
            target = ZERO if lead_flat else expected.get(symbol, ZERO)
            have = actual.get(symbol, ZERO)
            if have == target and target == expected.get(symbol, ZERO):
                continue
            intents = plan_correction(symbol, target, have, self.markets[symbol]) if have != target else ()
            if have != target:
                self.log.warning(
                    "manual_intervention_detected", symbol=symbol, kind="position", expected=target, actual=have
                )
            await self._correct(symbol, seq, intents)
            self.store.set_follower_position(self.name, symbol, target)
            corrections += 1
            seq += 1
        self.log.info(
            "reconcile_completed",
            corrections=corrections,
            positions={s: str(q) for s, q in self.store.follower_positions(self.name).items()},
        )
        return corrections

    async def _correct(self, symbol: str, seq: int, intents: tuple[Intent, ...]) -> None:
        if not intents:
            return
        await self._journal("r", seq, Plan(intents=intents))
        await self._execute("r", seq)

    # -- lifecycle: stop loss and close-outs ------------------------------------------------------

    async def check_stop_loss(self, cached: bool = False) -> bool:
        """SPEC section 6: at copy equity ≤ investment × (1 − pct/100), close everything and stop copying."""
        row = self.store.follower(self.name)
        if row is None or row.state != "active":
            return False
        max_age = self.config.equity_max_age_ms if cached else self._stop_loss_age_ms
        copy_equity = await self.copy_equity(max_age_ms=max_age)
        pct = self.settings.total_stop_loss_pct
        if not stop_loss_hit(copy_equity, row.investment, pct):
            return False
        self.log.warning(
            "follower_stop_loss_triggered",
            copy_equity=copy_equity,
            investment=row.investment,
            total_stop_loss_pct=pct,
            threshold=stop_loss_threshold(row.investment, pct),
            copy_pnl=copy_equity - row.investment,
        )
        await self.close_out("stopped_loss", "total stop loss", "s")
        return True

    async def close_out(self, state: str, reason: str, kind: str) -> None:
        """Flattens the account (reduce-only market orders), cancels its open orders and leaves it in `state`."""
        actual = {s: q for s, (q, _) in (await self.venue.positions()).items() if s in self.markets}
        seq = self.clock.now_ms()
        epoch = self.store.epoch
        closes = [
            (
                Intent(Leg.CLOSE, s, "sell" if q > 0 else "buy", abs(q), reduce_only=True),
                client_order_id(epoch, self.name, kind, seq, idx),
            )
            for idx, (s, q) in enumerate(sorted(actual.items()))
        ]
        self.store.close_out(self.name, state, reason, kind, seq, closes, self.clock.now_ms())
        await self.finish_close_outs()
        for symbol, order_id, _ in await self.venue.open_orders():
            await self.venue.cancel(symbol, order_id)

    async def finish_close_outs(self) -> None:
        """Completes journaled closing orders; once none is left, the expected positions are flat."""
        await self.resolve_unfinished()
        for symbol in self.store.follower_positions(self.name):
            self.store.set_follower_position(self.name, symbol, ZERO)

    def plan_release(self, fraction: Fraction, seq: int) -> list[tuple[Intent, str]]:
        """An investment decrease: every position reduced by the same fraction (reduce-only, truncated)."""
        intents = []
        for symbol, qty in sorted(self.store.follower_positions(self.name).items()):
            cut = self.markets[symbol].truncate(Fraction(abs(qty)) * fraction) if symbol in self.markets else ZERO
            if cut:
                intents.append(Intent(Leg.REDUCE, symbol, "sell" if qty > 0 else "buy", cut, reduce_only=True))
        return [(i, client_order_id(self.store.epoch, self.name, "i", seq, idx)) for idx, i in enumerate(intents)]

"""One follower's mirror: activation, copy equity, and each lead change planned and copied (SPEC 3), with the
stop loss checked before anything is planned (SPEC 6). Sending is `orders`, reconciliation `reconcile`,
close-outs `closeout`."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from bot.core.ids import client_order_id, phase
from bot.core.model import ZERO, FollowerView, Intent, Leg, Market
from bot.core.risk import estimated_copy_equity, stop_loss_hit, stop_loss_threshold
from bot.core.sync import plan_bootstrap, plan_change
from bot.engine.clock import Clock
from bot.engine.closeout import CloseOut
from bot.engine.orders import BOOTSTRAP, COPY, RELEASE, OrderConfig, OrderSender
from bot.engine.prices import MarkPrices
from bot.engine.reconcile import Reconciler
from bot.settings import FollowerSettings
from bot.store.db import Store, StoredChange
from bot.venue.budget import Priority
from bot.venue.ccxt_venue import AccountVenue


@dataclass(slots=True)
class MirrorConfig:
    max_leverage: Decimal
    equity_max_age_ms: int = 5000  # for sizing
    true_up_ms: int = 30_000  # between REST reads of the account, the stop loss runs on an estimate


@dataclass(frozen=True, slots=True)
class EquityBase:
    """A REST read of the account, and what the estimate between reads starts from."""

    account_equity: Decimal  # the account's, not the copy's: an investment change moves the reserve meanwhile
    positions: dict[str, Decimal]
    marks: dict[str, Decimal]
    last_fill: int
    read_ms: int


CENT = Decimal("0.01")


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
        self.orders = OrderSender(self.name, venue, store, clock, OrderConfig(config.max_leverage), self.log)
        self.reconciler = Reconciler(self.orders, markets)
        self.closeout = CloseOut(self.orders, markets)
        self._equity: tuple[Decimal, int] | None = None
        self._base: EquityBase | None = None
        self._taker_rate: Decimal | None = None
        self.end_request: tuple[str, str] | None = None  # (state, reason): close out and stop, in the worker
        # each follower reads its account again on its own phase, between 1 and 1.5 true-up intervals, so that
        # hundreds of balance requests never line up with (and slow) a fan-out
        self._true_up_ms = int(config.true_up_ms * (1 + phase(self.name) / 2))

    def request_end(self, state: str, reason: str) -> None:
        """Close out and stop (the worker's next step); from now on no open leaves for this follower."""
        self.end_request = (state, reason)
        self.orders.opens_halted = True

    def set_max_leverage(self, max_leverage: Decimal) -> None:
        """A reloaded `protection.max_leverage`: the cap of every later open, and the leverage set before it."""
        self.config.max_leverage = max_leverage
        self.orders.config.max_leverage = max_leverage

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
        if self.settings.email:
            self.store.set_email(self.name, self.settings.email)
        self._equity = None
        self._base = None
        self.orders.opens_halted = self.end_request is not None
        self.log.info(
            "follower_activated",
            investment=row.investment,
            reserve=row.reserve,
            account_equity=equity,
            copy_existing=self.settings.copy_existing,
            from_lead_change=row.last_seq,
            episode=row.episode,
            waiting_for_flat=sorted(self.store.ignored(self.name)),
        )
        return True

    async def copy_equity(self, fresh: bool = False, max_age_ms: int | None = None) -> Decimal:
        """Account equity − reserve, read again when older than `max_age_ms` (default: the sizing age; a read
        for sizing is on the copy path and goes before followers' other reads in the request budget)."""
        now = self.clock.now_ms()
        limit = self.config.equity_max_age_ms if max_age_ms is None else max_age_ms
        if fresh or self._equity is None or now - self._equity[1] > limit:
            equity = await self.venue.equity(Priority.LEAD if max_age_ms is None else None)
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

    async def resolve_unfinished(self) -> None:
        await self.orders.resolve_unfinished()

    async def reconcile(self) -> int:
        return await self.reconciler.reconcile()

    async def catch_up(self, stopping: asyncio.Event) -> int:
        """Resolves unfinished intents, copies existing positions once, then every lead change not yet copied.
        The stop loss is checked before each plan, with the equity the plan would be sized on: a follower at
        its threshold is closed, never copied to."""
        await self.orders.resolve_unfinished()
        row = self.store.follower(self.name)
        assert row is not None
        if not row.bootstrapped:
            if await self.check_stop_loss(cached=True):
                return 0
            await self._bootstrap(row.episode)
        copied = 0
        for stored in self.store.changes_after(row.last_seq):
            if stopping.is_set() or await self.check_stop_loss(cached=True):
                break
            await self.copy(stored)
            copied += 1
        return copied

    async def _bootstrap(self, episode: int) -> None:
        if self.settings.copy_existing and not self.store.has_plan(self.name, BOOTSTRAP, episode):
            lead = {s: q for s, q in self.store.bootstrap_positions(self.name).items() if self._wanted(s)}
            if lead:
                equity = self.store.equity("lead")
                lead_equity = equity[0] if equity else ZERO
                plan = plan_bootstrap(
                    lead, lead_equity, self._view(await self.copy_equity()), self.markets, await self.prices.get()
                )
                await self.orders.journal_plan(BOOTSTRAP, episode, plan)
        await self.orders.execute(BOOTSTRAP, episode)
        self.store.mark_bootstrapped(self.name)

    async def copy(self, stored: StoredChange) -> None:
        change = stored.change
        symbol = change.symbol
        unignore = None
        if symbol in self.store.ignored(self.name):
            unignore = symbol if change.now == 0 else None  # copying resumes once the lead is flat there
        elif self._wanted(symbol):
            if not self.store.has_plan(self.name, COPY, change.seq):
                marks = await self.prices.get()
                view = self._view(await self.copy_equity())
                plan = plan_change(change, stored.lead_equity, view, self.markets[symbol], marks)
                await self.orders.journal_plan(COPY, change.seq, plan)
            await self.orders.execute(COPY, change.seq)
        self.store.advance(self.name, change.seq, unignore=unignore)

    # -- lifecycle: stop loss and investment decreases --------------------------------------------

    async def _true_up(self) -> Decimal:
        """A REST read of the account: the new base of the estimate, and `equity_drift` when the estimate had
        drifted from it by more than a cent (funding, a fee at another rate, a deposit behind the bot's back)."""
        estimate = await self._estimate() if self._base is not None else None
        if self._taker_rate is None and self.markets:  # once: the estimate's fees then need no request
            self._taker_rate = await self.venue.taker_rate(next(iter(sorted(self.markets))))
        copy_equity = await self.copy_equity(fresh=True, max_age_ms=0)
        marks = await self.prices.latest()
        assert self._equity is not None
        self._base = EquityBase(
            self._equity[0],
            self.store.follower_positions(self.name),
            dict(marks),
            self.store.last_fill(self.name),
            self.clock.now_ms(),
        )
        if estimate is not None and abs(estimate - copy_equity) > CENT:
            self.log.info("equity_drift", estimated=estimate, actual=copy_equity, drift=copy_equity - estimate)
        return copy_equity

    async def _estimate(self) -> Decimal:
        base = self._base
        assert base is not None
        fills = self.store.fills_since(self.name, base.last_fill)
        rate = self._taker_rate or ZERO
        marks = await self.prices.latest()
        account = estimated_copy_equity(base.account_equity, base.positions, base.marks, fills, marks, rate)
        row = self.store.follower(self.name)
        assert row is not None
        return account - row.reserve

    async def check_stop_loss(self, cached: bool = False) -> bool:
        """SPEC section 6: at copy equity ≤ investment × (1 − pct/100), stop copying and close everything
        (the close-out itself is the worker's next step). True when it triggered.

        `cached`: with the equity a plan is sized on (before planning). Otherwise, every poll: the copy equity
        estimated from the last REST read, the streamed mark prices and the follower's own fills since, with no
        request (SPEC 12); the account is read again every `true_up_ms`."""
        row = self.store.follower(self.name)
        if row is None or row.state != "active":
            return False
        if cached:
            copy_equity = await self.copy_equity()
        elif self._base is None or self.clock.now_ms() - self._base.read_ms >= self._true_up_ms:
            copy_equity = await self._true_up()
        else:
            copy_equity = await self._estimate()
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
        self.closeout.begin("stopped_loss", "total stop loss")
        return True

    def plan_release(self, fraction: Fraction, seq: int) -> list[tuple[Intent, str]]:
        """An investment decrease: every position reduced by the same fraction (reduce-only, truncated)."""
        intents = []
        for symbol, qty in sorted(self.store.follower_positions(self.name).items()):
            cut = self.markets[symbol].truncate(Fraction(abs(qty)) * fraction) if symbol in self.markets else ZERO
            if cut:
                intents.append(Intent(Leg.REDUCE, symbol, "sell" if qty > 0 else "buy", cut, reduce_only=True))
        number = self.orders.number
        return [(i, client_order_id(self.store.epoch, number, RELEASE, seq, idx)) for idx, i in enumerate(intents)]

"""One follower's mirror: activation, copy equity, and each lead change planned and copied (SPEC 3), with the
stop loss checked before anything is planned (SPEC 6). Sending is `orders`, reconciliation `reconcile`,
close-outs `closeout`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from bot.core.ids import client_order_id
from bot.core.model import ZERO, EquityBase, FollowerState, FollowerView, Intent, Leg, Market, Plan, PlanKind
from bot.core.risk import estimated_copy_equity, stop_loss_hit, stop_loss_threshold
from bot.core.sync import plan_bootstrap, plan_change
from bot.engine.clock import Clock
from bot.engine.closeout import CloseOut
from bot.engine.orders import OrderConfig, OrderSender
from bot.engine.prices import MarkPrices
from bot.engine.reconcile import Reconciler
from bot.settings import FollowerSettings
from bot.store.db import Store
from bot.store.rows import StoredChange
from bot.venue.budget import Priority
from bot.venue.ccxt_venue import AccountSnapshot, AccountVenue


@dataclass(slots=True)
class MirrorConfig:
    max_leverage: Decimal
    taker_rate: Decimal = ZERO  # assumed for fills between true-ups (the lead's rate; a true-up corrects the rest)


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
        self.orders = OrderSender(self.name, venue, store, clock, self._order_config(), self.log)
        self.reconciler = self._reconciler()
        self.closeout = self._closeout()
        self._base: EquityBase | None = store.equity_base(self.name)  # kept across restarts
        self.end_request: tuple[FollowerState, str] | None = None  # (state, reason): close out and stop, in the worker
        self.busy = False  # claimed by its worker's step or by a fan-out: one thing at a time per follower

    def claim(self) -> bool:
        """Takes the follower for a worker step or a fan-out; False when the other has it."""
        if self.busy:
            return False
        self.busy = True
        return True

    def unclaim(self) -> None:
        self.busy = False

    @property
    def estimating(self) -> bool:
        """Its copy equity can be estimated with no request (an account read is in hand)."""
        return self._base is not None

    def _order_config(self) -> OrderConfig:
        return OrderConfig(self.config.max_leverage)

    def _reconciler(self) -> Reconciler:
        return Reconciler(self.orders, self.markets)

    def _closeout(self) -> CloseOut:
        return CloseOut(self.orders, self.markets)

    def request_end(self, state: FollowerState, reason: str) -> None:
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
        await self.prices.latest()  # the marks its positions (if any) are valued at
        account = await self.venue.account()
        equity = account.equity
        if self.settings.investment > equity:
            self.log.error(
                "follower_config_error",
                reason="investment above the account equity at start",
                investment=self.settings.investment,
                account_equity=equity,
            )
            self.store.set_follower_state(self.name, FollowerState.CONFIG_ERROR, "investment above the account equity")
            return False
        row = self.store.activate_follower(
            self.name, self.settings.investment, equity, self.settings.copy_existing, self.clock.now_ms(), config_hash
        )
        if self.settings.email:
            self.store.set_email(self.name, self.settings.email)
        self._set_base(account)
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

    async def copy_equity(self) -> Decimal:
        """Account equity − reserve, estimated from the last REST read (SPEC 12): no request, but the first
        read when there is none yet (on the copy path: before followers' other reads in the budget)."""
        if self._base is None:
            await self.true_up(Priority.LEAD)
        return await self._estimate()

    def _view(self, copy_equity: Decimal) -> FollowerView:
        return FollowerView(
            self.name,
            copy_equity,
            self.store.follower_positions(self.name),
            self.config.max_leverage,
            self.settings.max_slippage_pct,
        )

    def copies(self, symbol: str) -> bool:
        return symbol in self.markets and (not self.settings.symbols or symbol in self.settings.symbols)

    # -- the main step ----------------------------------------------------------------------------

    async def step(self, stopping: asyncio.Event, reconcile_due: Callable[[], bool]) -> bool:
        """One iteration of this follower's worker, by its state (its row read once): close out when asked or
        closing; when active, copy first (the stop loss checked before each plan), then reconcile when due,
        then the stop loss on the estimate (no request). True when it reconciled."""
        row = self.store.follower(self.name)
        state = row.state if row is not None else None
        if self.end_request is not None and state not in (FollowerState.CLOSING, FollowerState.ENDED):
            if state == FollowerState.ACTIVE:
                self.closeout.begin(*self.end_request)
                state = FollowerState.CLOSING
            else:
                self.store.set_follower_state(self.name, FollowerState.ENDED, self.end_request[1])
                self.log.info("follower_ended", reason=self.end_request[1])
                return False
        if state == FollowerState.CLOSING:
            await self.closeout.step()
            return False
        if state != FollowerState.ACTIVE:
            return False
        await self.catch_up(stopping)
        reconciled = reconcile_due()
        if reconciled:
            await self.reconcile()
        await self.check_stop_loss()
        after = self.store.follower(self.name)
        if after is not None and after.state == FollowerState.CLOSING:
            await self.closeout.step()  # the stop loss just hit: the first round goes out at once
        return reconciled

    async def resolve_unfinished(self) -> None:
        await self.orders.resolve_unfinished()

    async def reconcile(self) -> int:
        """One periodic pass (SPEC 5, 12): the account read once, its equity the estimate's new base (the
        true-up), its positions and orders against what our own fills add up to. Returns the corrections."""
        await self.orders.resolve_unfinished()
        return await self.reconciler.reconcile(await self.true_up())

    async def catch_up(self, stopping: asyncio.Event) -> int:
        """Resolves unfinished intents, copies existing positions once, then every lead change not yet copied.
        The stop loss is checked before each plan, with the equity the plan would be sized on: a follower at
        its threshold is closed, never copied to."""
        await self.orders.resolve_unfinished()
        row = self.store.follower(self.name)
        assert row is not None
        if not row.bootstrapped:
            if await self.check_stop_loss():
                return 0
            await self._bootstrap(row.episode)
        copied = 0
        for stored in self.store.changes_after(row.last_seq):
            if stopping.is_set():
                break
            # the plan's symbol read fresh first: the stop loss sees the very equity the plan is sized on
            await self.prices.for_plan(stored.change.symbol, stored.detected_ms)
            copy_equity = await self.copy_equity()
            if self.stop_loss_hit(copy_equity):
                break
            await self.copy(stored, copy_equity)
            copied += 1
        return copied

    async def plan(self, stored: StoredChange, copy_equity: Decimal, marks: Mapping[str, Decimal]) -> Plan:
        """One lead change's plan for this follower (SPEC 3)."""
        change = stored.change
        return plan_change(change, stored.lead_equity, self._view(copy_equity), self.markets[change.symbol], marks)

    async def _plan_bootstrap(
        self, lead: Mapping[str, Decimal], lead_equity: Decimal, marks: Mapping[str, Decimal]
    ) -> Plan:
        """`copy_existing`: the lead's positions at activation, opened at market (SPEC 3)."""
        return plan_bootstrap(lead, lead_equity, self._view(await self.copy_equity()), self.markets, marks)

    async def _bootstrap(self, episode: int) -> None:
        if self.settings.copy_existing and not self.store.has_plan(self.name, PlanKind.BOOTSTRAP, episode):
            lead = {s: q for s, q in self.store.bootstrap_positions(self.name).items() if self.copies(s)}
            if lead:
                equity = self.store.equity("lead")
                lead_equity = equity[0] if equity else ZERO
                for symbol in sorted(lead):
                    await self.prices.for_plan(symbol)
                marks = await self.prices.latest()
                plan = await self._plan_bootstrap(lead, lead_equity, marks)
                await self.orders.journal_plan(PlanKind.BOOTSTRAP, episode, plan)
        await self.orders.execute(PlanKind.BOOTSTRAP, episode)
        self.store.mark_bootstrapped(self.name)

    async def copy(self, stored: StoredChange, copy_equity: Decimal) -> None:
        """Plans (once) and executes one lead change, sized on `copy_equity`."""
        change = stored.change
        ignored = change.symbol in self.store.ignored(self.name)
        if not ignored and self.copies(change.symbol):
            if not self.store.has_plan(self.name, PlanKind.COPY, change.seq):
                marks = await self.prices.for_plan(change.symbol, stored.detected_ms)
                plan = await self.plan(stored, copy_equity, marks)
                await self.orders.journal_plan(PlanKind.COPY, change.seq, plan)
            await self.orders.execute(PlanKind.COPY, change.seq)
        self.advance(stored, ignored)

    def advance(self, stored: StoredChange, ignored: bool) -> None:
        """The change is copied (or not for this follower): progress. Copying a symbol it ignores resumes once
        the lead is flat there."""
        change = stored.change
        self.store.advance(self.name, change.seq, unignore=change.symbol if ignored and change.now == 0 else None)

    # -- lifecycle: stop loss and investment decreases --------------------------------------------

    def _set_base(self, account: AccountSnapshot) -> None:
        base = EquityBase(
            account.equity,
            dict(account.positions),
            dict(self.prices.known()),
            self.store.last_fill(self.name),
            self.clock.now_ms(),
        )
        self.store.save_equity_base(self.name, base)
        self._base = base

    async def true_up(self, priority: Priority | None = None) -> AccountSnapshot:
        """A REST read of the account: the new base of the estimate, and `equity_drift` when the estimate had
        drifted from it by more than a cent (funding, a fee at another rate, a deposit behind the bot's back).
        Made with no order of the follower's in flight (the worker does one thing at a time)."""
        account = await self._read_account(priority)
        estimate = await self._estimate() if self._base is not None else None
        self._set_base(account)
        if estimate is not None:
            copy_equity = await self._estimate()
            if abs(estimate - copy_equity) > CENT:
                self.log.info("equity_drift", estimated=estimate, actual=copy_equity, drift=copy_equity - estimate)
        return account

    async def _read_account(self, priority: Priority | None = None) -> AccountSnapshot:
        await self.prices.latest()  # the marks the read is valued at
        return await self.venue.account(priority)

    async def _estimate(self) -> Decimal:
        base = self._base
        assert base is not None
        marks = await self.prices.latest()
        fundings = []
        due = self.prices.fundings_since(base.read_ms)
        fills = self.store.fills_since(self.name, base.last_fill) if due else []  # read once, only when needed
        for symbol, at, rate, mark in due:
            held = base.positions.get(symbol, ZERO) + sum((q for s, q, _, t in fills if s == symbol and t <= at), ZERO)
            if held:
                fundings.append((held, mark, rate))
        account = estimated_copy_equity(
            base.account_equity,
            base.positions,
            base.marks,
            self.store.fill_sums_since(self.name, base.last_fill),
            marks,
            self.config.taker_rate,
            fundings,
        )
        row = self.store.follower(self.name)
        assert row is not None
        return account - row.reserve

    async def check_stop_loss(self) -> bool:
        """SPEC section 6: at copy equity ≤ investment × (1 − pct/100), stop copying and close everything
        (the close-out itself is the worker's next step). True when it triggered.

        On the copy equity estimated from the last REST read, the streamed mark prices and the follower's own
        fills since, with no request (SPEC 12); the account is read again by each reconciliation. Before each
        plan, `catch_up` checks it with the equity the plan is sized on."""
        return self.stop_loss_hit(await self.copy_equity())

    def stop_loss_hit(self, copy_equity: Decimal) -> bool:
        row = self.store.follower(self.name)
        if row is None or row.state != FollowerState.ACTIVE:
            return False
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
        self.closeout.begin(FollowerState.STOPPED_LOSS, "total stop loss")
        return True

    def _release(self, fraction: Fraction) -> list[Intent]:
        """An investment decrease: every position reduced by the same fraction (reduce-only, truncated)."""
        intents = []
        for symbol, qty in sorted(self.store.follower_positions(self.name).items()):
            cut = self.markets[symbol].truncate(Fraction(abs(qty)) * fraction) if symbol in self.markets else ZERO
            if cut:
                intents.append(Intent(Leg.REDUCE, symbol, "sell" if qty > 0 else "buy", cut, reduce_only=True))
        return intents

    def plan_release(self, fraction: Fraction, seq: int) -> list[tuple[Intent, str]]:
        """An investment decrease's orders, with their client order ids (journaled with the flow)."""
        intents = self._release(fraction)
        number = self.orders.number
        return [
            (i, client_order_id(self.store.epoch, number, PlanKind.RELEASE, seq, idx)) for idx, i in enumerate(intents)
        ]

"""Spot Smart Sync in the engine (SPEC 11): the follower's mirror, reconciliation and close-out, and the lead's
fill price from its trades. The market type picks these once (`bot.market`); the rest of the engine is shared.

A spot follower's copy holdings are what its own fills add up to, net of fees charged in the asset; its copy
USDT is its USDT less the reserve. The assets its account held at copy start are its reserve: never sold, and
their price moves are not copy PnL.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction

from bot.core.model import ZERO, EquityBase, FollowerState, Intent, Market, Plan, PlanKind
from bot.core.spot import (
    SpotFollowerView,
    check_holding,
    plan_spot_bootstrap,
    plan_spot_change,
    plan_spot_sale,
    reserve_at_start,
    spot_copy_equity,
)
from bot.engine.closeout import CloseOut
from bot.engine.lead import LeadPoller
from bot.engine.mirror import FollowerMirror
from bot.engine.orders import OrderConfig, OrderSender
from bot.engine.prices import MarkPrices
from bot.engine.reconcile import Reconciler, cancel_orders
from bot.store.rows import StoredChange
from bot.venue.budget import Priority
from bot.venue.ccxt_venue import AccountSnapshot
from bot.venue.spot_venue import SpotVenue

# spot: every kind of order moves the copy holding (a stop loss's or removal's sales leave the dust behind)
SPOT_MOVES = (PlanKind.COPY, PlanKind.BOOTSTRAP, PlanKind.RELEASE, PlanKind.RECONCILE, PlanKind.STOP, PlanKind.END)
USDT = "USDT"


class SpotMirror(FollowerMirror):
    venue: SpotVenue

    def _order_config(self) -> OrderConfig:
        return OrderConfig(None, SPOT_MOVES)

    def _reconciler(self) -> Reconciler:
        return SpotReconciler(self.orders, self.markets)

    def set_max_leverage(self, max_leverage: Decimal) -> None:
        """Spot has no leverage: a reload's `protection.max_leverage` (refused on spot anyway) changes nothing."""

    def _closeout(self) -> CloseOut:
        return SpotCloseOut(self.orders, self.markets, self.prices)

    async def activate(self, config_hash: str = "") -> bool:
        """(Re)activation: the account's holdings are the reserve, its free USDT must cover the investment."""
        marks = await self.prices.latest()
        balances = await self.venue.balances()
        free_usdt = balances.get(USDT, (ZERO, ZERO))[0]
        totals = {asset: free + locked for asset, (free, locked) in balances.items()}
        reserve = reserve_at_start(totals, free_usdt, self.settings.investment)
        if reserve is None:
            self.log.error(
                "follower_config_error",
                reason="free USDT below the investment at start",
                investment=self.settings.investment,
                free_usdt=free_usdt,
            )
            self.store.set_follower_state(self.name, FollowerState.CONFIG_ERROR, "free USDT below the investment")
            return False
        usdt = totals.get(USDT, ZERO)
        row = self.store.activate_follower(
            self.name, self.settings.investment, usdt, self.settings.copy_existing, self.clock.now_ms(), config_hash
        )
        assets = {asset: qty for asset, qty in reserve.items() if asset != USDT}
        self.store.set_spot_reserve(self.name, assets)
        if self.settings.email:
            self.store.set_email(self.name, self.settings.email)
        self._set_base(self.venue.snapshot(balances, dict(marks)))
        self.orders.opens_halted = self.end_request is not None
        self.log.info(
            "follower_activated",
            investment=row.investment,
            reserve=row.reserve,
            reserve_assets={a: str(q) for a, q in sorted(assets.items())},
            copy_existing=self.settings.copy_existing,
            from_lead_change=row.last_seq,
            episode=row.episode,
        )
        return True

    def _set_base(self, account: AccountSnapshot) -> None:
        """A spot base is the account's USDT at the read: holdings are exact from fills, USDT moves with them."""
        base = EquityBase(account.cash, {}, {}, self.store.last_fill(self.name), self.clock.now_ms())
        self.store.save_equity_base(self.name, base)
        self._base = base
        # what `bot status` and the heartbeat show: USDT and the copy holdings at the prices known (not the
        # reserve's assets), so that less the USDT reserve it is the copy equity
        valued = spot_copy_equity(account.cash, self.store.follower_positions(self.name), self.prices.known())
        self.store.record_equity(self.name, valued, base.read_ms)

    async def _read_account(self, priority: Priority | None = None) -> AccountSnapshot:
        return await self.venue.account(priority, dict(await self.prices.latest()))

    def _copy_usdt(self) -> Decimal:
        base = self._base
        assert base is not None
        row = self.store.follower(self.name)
        assert row is not None
        return base.account_equity - row.reserve + self.store.cash_flows_since(self.name, base.last_fill)

    async def _estimate(self) -> Decimal:
        """Copy USDT + Σ copy holding × last price, with no request (SPEC 11, 12)."""
        marks = await self.prices.latest()
        return spot_copy_equity(self._copy_usdt(), self.store.follower_positions(self.name), marks)

    def _spot_view(self) -> SpotFollowerView:
        holdings = self.store.follower_positions(self.name)
        return SpotFollowerView(self.name, self._copy_usdt(), holdings, self.settings.max_slippage_pct)

    async def plan(self, stored: StoredChange, copy_equity: Decimal, marks: Mapping[str, Decimal]) -> Plan:
        change = stored.change
        return plan_spot_change(change, stored.lead_equity, self._spot_view(), self.markets[change.symbol], marks)

    async def _plan_bootstrap(
        self, lead: Mapping[str, Decimal], lead_equity: Decimal, marks: Mapping[str, Decimal]
    ) -> Plan:
        await self.copy_equity()  # the base, when there is none yet
        return plan_spot_bootstrap(lead, lead_equity, self._spot_view(), self.markets, marks)

    def _release(self, fraction: Fraction) -> list[Intent]:
        """An investment decrease sells the same fraction of every copy holding (dust aside), releasing USDT."""
        holdings = self.store.follower_positions(self.name)
        return list(plan_spot_sale(holdings, fraction, self.markets, self.prices.known()).intents)


def _where_orders(
    account: AccountSnapshot, expected: Mapping[str, Decimal], markets: Mapping[str, Market]
) -> set[str] | None:
    """Where to look for open orders: every market (None: one listing, weight 80) when USDT is locked by some
    buy; else market by market (weight 6 each) where a sale locks the asset or the bot holds a copy."""
    if account.orders_anywhere:
        return None
    return (account.symbols | set(expected)) & set(markets)


class SpotReconciler(Reconciler):
    async def reconcile(self, account: AccountSnapshot) -> int:
        """The account against the copy holdings (SPEC 11): it may hold more (the reserve, what the user added),
        never less; a shortfall is manual intervention, logged, and the copy holding shrinks to what is there.
        Open orders the bot did not place are cancelled."""
        assert isinstance(self.venue, SpotVenue)
        expected = self.store.follower_positions(self.name)
        reserve = self.store.spot_reserve(self.name)
        corrections = await cancel_orders(
            self.venue, self.log, f"cb-{self.store.epoch}-", _where_orders(account, expected, self.markets), algos=False
        )
        kept_reserve = dict(reserve)
        for symbol in sorted(set(expected) | {s for s, p in self.venue.pairs.items() if p.base in reserve}):
            asset = self.venue.pairs[symbol].base
            copy = expected.get(symbol, ZERO)
            check = check_holding(copy, reserve.get(asset, ZERO), account.positions.get(symbol, ZERO))
            if check.short:
                self.log.warning(
                    "manual_intervention_detected",
                    symbol=symbol,
                    kind="holding",
                    expected=copy,
                    actual=account.positions.get(symbol, ZERO),
                    short=check.short,
                )
                self.store.set_follower_position(self.name, symbol, check.copy_holding)
                corrections += 1
            if asset in reserve and check.reserve != reserve[asset]:
                kept_reserve[asset] = check.reserve
        if kept_reserve != reserve:
            self.log.info("reserve_reduced", before={a: str(q) for a, q in reserve.items()}, after=kept_reserve)
            self.store.set_spot_reserve(self.name, kept_reserve)
        self.log.info(
            "reconcile_completed",
            corrections=corrections,
            holdings={s: str(q) for s, q in self.store.follower_positions(self.name).items()},
        )
        return corrections


class SpotCloseOut(CloseOut):
    """Sells the copy holdings at market (never more than the account holds, never the reserve); what the
    exchange's minimums refuse stays as dust. Done when only dust is left."""

    def __init__(self, orders: OrderSender, markets: Mapping[str, Market], prices: MarkPrices) -> None:
        super().__init__(orders, markets)
        self.prices = prices

    async def _sell(
        self, final_state: FollowerState, holdings: Mapping[str, Decimal], marks: Mapping[str, Decimal]
    ) -> Plan:
        plan = plan_spot_sale(holdings, Fraction(1), self.markets, marks)
        if plan.intents:
            kind = PlanKind.STOP if final_state == FollowerState.STOPPED_LOSS else PlanKind.END
            self._seq = seq = max(self.clock.now_ms(), self._seq + 1)
            await self.orders.journal_plan(kind, seq, Plan(intents=plan.intents))
            await self.orders.execute(kind, seq)
        return plan

    def _sellable(self, account: AccountSnapshot) -> dict[str, Decimal]:
        held = self.store.follower_positions(self.name)
        return {s: min(q, account.positions.get(s, ZERO)) for s, q in held.items() if s in self.markets and q > 0}

    async def step(self) -> bool:
        row = self.store.follower(self.name)
        if row is None or row.state != FollowerState.CLOSING:
            return True
        assert row.closing_to is not None, "a closing follower knows the state it closes to"
        self.rounds += 1
        await self.orders.resolve_unfinished()
        venue = self.venue
        assert isinstance(venue, SpotVenue)
        marks = dict(await self.prices.latest())
        if self._at_once:  # the copy holdings' sales go out before anything is read (SPEC 12)
            self._at_once = False
            await self._sell(row.closing_to, self.store.follower_positions(self.name), marks)
        account = await venue.account(prices=marks)
        watched = _where_orders(account, self.store.follower_positions(self.name), self.markets)
        if await cancel_orders(venue, self.log, None, watched, algos=False):
            account = await venue.account(prices=marks)
        await self._sell(row.closing_to, self._sellable(account), marks)
        account = await venue.account(prices=marks)
        left = plan_spot_sale(self._sellable(account), Fraction(1), self.markets, marks)
        if left.intents:
            return self._retry(row.closing_to, {i.symbol: i.qty for i in left.intents})
        dust = self.store.follower_positions(self.name)
        dust_value = spot_copy_equity(ZERO, dust, marks)
        released = account.cash - row.reserve
        self.log.info(
            "follower_funds_released",
            released_usdt=released,
            dust={s: str(q) for s, q in dust.items() if q},
            dust_value=dust_value,
        )
        self.store.record_equity(self.name, account.cash + dust_value, self.clock.now_ms())  # what status shows
        return self._finish(account.cash + dust_value)


class SpotLeadPoller(LeadPoller):
    venue: SpotVenue

    async def fill_price(
        self, symbol: str, before: tuple[Decimal, Decimal], after: tuple[Decimal, Decimal], since_ms: int, now_ms: int
    ) -> Decimal | None:
        """The lead's buy price from its own trades since the last read (volume-weighted): the slippage guard's
        reference (SPEC 11). None for a sale (never guarded) or a holding that grew without a trade."""
        if after[0] <= before[0]:
            return None
        start = since_ms if since_ms > 0 else now_ms - 60_000
        buys = [f for f in await self.venue.trades(symbol, start, now_ms + 1, Priority.LEAD) if f.side == "buy"]
        qty = sum((f.qty for f in buys), ZERO)
        return sum((f.qty * f.price for f in buys), ZERO) / qty if qty else None

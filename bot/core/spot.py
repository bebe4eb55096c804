"""Spot Smart Sync (SPEC section 11): holdings instead of signed positions, cash instead of leverage. Pure.

A spot lead change is its holding of a copied asset `Q_prev → Q_now` (never below 0). Holdings are keyed by
the market's symbol (`BTC/USDT`), as positions are on futures. What the two markets share lives in
`bot.core.model` (truncation, minimums) and `bot.core.sync` (the slippage test).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from bot.core.model import ZERO, Intent, LeadChange, Leg, Market, Plan, Skip, decimal_of
from bot.core.sync import slippage_exceeded

# seed 001: a spot copy needs at least this much
MIN_SPOT_INVESTMENT = Decimal(100)
CLIPPED = "sync_clipped_by_cash"


@dataclass(frozen=True, slots=True)
class SpotFollowerView:
    """What the core needs of one spot follower: its copy USDT and copy holdings (its own fills, net of fees)."""

    name: str
    copy_usdt: Decimal
    holdings: Mapping[str, Decimal]
    max_slippage_pct: Decimal

    def holding(self, symbol: str) -> Decimal:
        return self.holdings.get(symbol, ZERO)

    def copy_equity(self, prices: Mapping[str, Decimal]) -> Decimal:
        return spot_copy_equity(self.copy_usdt, self.holdings, prices)


def spot_copy_equity(copy_usdt: Decimal, holdings: Mapping[str, Decimal], prices: Mapping[str, Decimal]) -> Decimal:
    """`E_f` = copy USDT + Σ copy holding × last price (dust included; a holding without a price counts 0)."""
    return copy_usdt + sum((qty * prices[s] for s, qty in holdings.items() if qty and s in prices), ZERO)


def spot_kind(change: LeadChange, market: Market) -> str:
    """`buy`, `sell` (partial) or `sell_out` (what the lead keeps is below the market's minimum quantity)."""
    if change.now > change.prev:
        return "buy"
    if change.now == change.prev:
        return "none"
    return "sell_out" if change.now < market.min_qty else "sell"


def _sale(market: Market, holding: Decimal, wanted: Fraction, price: Decimal, leg: Leg) -> Plan:
    """Sells `wanted` (truncated to the step) of a copy holding; what the exchange's minimums refuse stays as
    dust, valued in copy equity and sold later by a sale that makes it possible."""
    qty = market.truncate(min(wanted, Fraction(holding)))
    if not market.tradable(qty, price):
        detail = {
            "wanted_qty": str(decimal_of(wanted)),
            "qty": str(qty),
            "holding": str(holding),
            "min_qty": str(market.min_qty),
            "min_notional": str(market.min_notional),
            "leg": leg.value,
        }
        return Plan(skips=(Skip("sync_skipped_below_minimum", market.symbol, detail),))
    return Plan(intents=(Intent(leg, market.symbol, "sell", qty, reduce_only=False),))


def _buy(
    follower: SpotFollowerView, market: Market, wanted: Fraction, lead_price: Decimal | None, price: Decimal
) -> Plan:
    """Buys `wanted`, under the slippage guard and the cash cap: its cost at `price` plus `max_slippage_pct` must
    fit in the copy USDT (the fee is taken in the asset bought, so it needs no USDT)."""
    symbol = market.symbol
    if slippage_exceeded("buy", lead_price, price, follower.max_slippage_pct):
        detail = {
            "side": "buy",
            "lead_price": str(lead_price),
            "price": str(price),
            "max_slippage_pct": str(follower.max_slippage_pct),
        }
        return Plan(skips=(Skip("sync_skipped_slippage", symbol, detail),))
    worst = Fraction(price) * (1 + Fraction(follower.max_slippage_pct) / 100)
    affordable = max(Fraction(0), Fraction(follower.copy_usdt) / worst)
    clipped: tuple[dict[str, str], ...] = ()
    if wanted > affordable:
        detail = {"wanted_qty": str(decimal_of(wanted)), "copy_usdt": str(follower.copy_usdt), "price": str(price)}
        qty = market.truncate(affordable)
        if not market.tradable(qty, price):
            return Plan(skips=(Skip("sync_skipped_no_cash", symbol, detail),))
        clipped = ({"symbol": symbol, "qty": str(qty), **detail},)
    else:
        qty = market.truncate(wanted)
    if not market.tradable(qty, price):
        detail = {
            "wanted_qty": str(decimal_of(wanted)),
            "qty": str(qty),
            "min_qty": str(market.min_qty),
            "min_notional": str(market.min_notional),
            "price": str(price),
        }
        return Plan(skips=(Skip("sync_skipped_below_minimum", symbol, detail),))
    return Plan(intents=(Intent(Leg.OPEN, symbol, "buy", qty, reduce_only=False),), clipped=clipped, clip_event=CLIPPED)


def plan_spot_change(
    change: LeadChange, lead_equity: Decimal, follower: SpotFollowerView, market: Market, prices: Mapping[str, Decimal]
) -> Plan:
    """The follower's order for one lead change, per the SPEC section 11 table.

    `prices` holds a last price for every symbol the follower holds and for `change.symbol`, which is also
    the price the follower's order is expected to fill at. A buy is `r · ΔQ` with `r = E_f / E_L`; a partial
    sale sells the lead's fraction `φ = 1 − Q_now / Q_prev` of the copy holding; a sell-out sells all of it.
    """
    symbol = change.symbol
    price = prices[symbol]
    holding = follower.holding(symbol)
    kind = spot_kind(change, market)
    if kind == "none":
        return Plan()
    if kind == "buy":
        copy_equity = follower.copy_equity(prices)
        if copy_equity <= 0 or lead_equity <= 0:
            return Plan(skips=(Skip("sync_skipped_no_equity", symbol, {"copy_equity": str(copy_equity)}),))
        ratio = Fraction(copy_equity) / Fraction(lead_equity)
        return _buy(follower, market, ratio * Fraction(change.now - change.prev), change.fill_price, price)
    if holding <= 0:
        return Plan()
    if kind == "sell_out":
        return _sale(market, holding, Fraction(holding), price, Leg.CLOSE)
    fraction = 1 - Fraction(change.now) / Fraction(change.prev)
    return _sale(market, holding, Fraction(holding) * fraction, price, Leg.REDUCE)


def plan_spot_bootstrap(
    lead_holdings: Mapping[str, Decimal],
    lead_equity: Decimal,
    follower: SpotFollowerView,
    markets: Mapping[str, Market],
    prices: Mapping[str, Decimal],
) -> Plan:
    """`copy_existing = true`: buys `r · Q` of every copied asset the lead already holds, at market; each buy
    spends copy USDT the next one can no longer use (the cash cap holds over the whole bootstrap)."""
    intents: list[Intent] = []
    skips: list[Skip] = []
    clipped: list[dict[str, str]] = []
    copy_equity = follower.copy_equity(prices)
    cash = follower.copy_usdt
    holdings = dict(follower.holdings)
    for symbol in sorted(lead_holdings):
        qty = lead_holdings[symbol]
        if qty <= 0 or symbol not in markets or symbol not in prices:
            continue
        if copy_equity <= 0 or lead_equity <= 0:
            skips.append(Skip("sync_skipped_no_equity", symbol, {"copy_equity": str(copy_equity)}))
            continue
        view = SpotFollowerView(follower.name, cash, holdings, follower.max_slippage_pct)
        wanted = Fraction(copy_equity) / Fraction(lead_equity) * Fraction(qty)
        plan = _buy(view, markets[symbol], wanted, None, prices[symbol])
        intents.extend(plan.intents)
        skips.extend(plan.skips)
        clipped.extend(plan.clipped)
        for intent in plan.intents:
            cash -= intent.qty * prices[symbol]
            holdings[symbol] = holdings.get(symbol, ZERO) + intent.qty
    return Plan(tuple(intents), tuple(skips), tuple(clipped), CLIPPED)


def plan_spot_sale(
    holdings: Mapping[str, Decimal],
    fraction: Fraction,
    markets: Mapping[str, Market],
    prices: Mapping[str, Decimal],
) -> Plan:
    """Sells `fraction` of every copy holding at market: 1 for a stop loss, a removal or a lead gone (dust
    stays), `x / investment` for an investment decrease. Only copy holdings: a reserve is never sold."""
    if not 0 < fraction <= 1:
        raise ValueError(f"a sale takes a fraction in (0, 1], got {fraction}")
    intents: list[Intent] = []
    skips: list[Skip] = []
    leg = Leg.CLOSE if fraction == 1 else Leg.REDUCE
    for symbol in sorted(holdings):
        holding = holdings[symbol]
        if holding <= 0 or symbol not in markets or symbol not in prices:
            continue
        plan = _sale(markets[symbol], holding, Fraction(holding) * fraction, prices[symbol], leg)
        intents.extend(plan.intents)
        skips.extend(plan.skips)
    return Plan(tuple(intents), tuple(skips))


def holding_after_fill(holding: Decimal, side: str, qty: Decimal, fee_in_base: Decimal) -> Decimal:
    """A copy holding after one of the follower's own fills: a buy adds what was bought, a sale takes what was
    sold, and a fee charged in the asset itself (a buy's, on Binance) is taken from it."""
    return (holding + qty if side == "buy" else holding - qty) - fee_in_base


def usdt_after_fill(usdt: Decimal, side: str, qty: Decimal, price: Decimal, fee_in_usdt: Decimal) -> Decimal:
    """Copy USDT after one fill: a buy pays its cost, a sale receives its proceeds; a fee charged in USDT (a
    sale's, on Binance) is paid from it."""
    cost = qty * price
    return (usdt - cost if side == "buy" else usdt + cost) - fee_in_usdt


@dataclass(frozen=True, slots=True)
class HoldingCheck:
    """Reconciliation of one asset: the copy holding to keep, and whether the account held less than it."""

    copy_holding: Decimal
    reserve: Decimal
    short: Decimal  # how much of the copy holding was missing (manual intervention), 0 when none


def check_holding(copy_holding: Decimal, reserve: Decimal, account: Decimal) -> HoldingCheck:
    """What a reconciliation keeps of a copy holding, given what the account holds (free + locked).

    The account may hold more than the copy holding: that is the reserve (and whatever the user added). It may
    never hold less: something outside the bot sold it; the copy holding is reduced to what is there. A
    shortfall comes out of the reserve first (the user's own, theirs to sell), then out of the copy holding.
    """
    if account >= copy_holding + reserve:
        return HoldingCheck(copy_holding, reserve, ZERO)
    if account >= copy_holding:
        return HoldingCheck(copy_holding, account - copy_holding, ZERO)
    kept = max(ZERO, account)
    return HoldingCheck(kept, ZERO, copy_holding - kept)


def reserve_at_start(
    totals: Mapping[str, Decimal], free_usdt: Decimal, investment: Decimal, quote: str = "USDT"
) -> dict[str, Decimal] | None:
    """The reserve: everything the account holds at copy start (`totals`, free + locked per asset), less the
    investment, which its free USDT must cover (None when it does not: a configuration error for that
    follower)."""
    if free_usdt < investment:
        return None
    reserve = {asset: qty for asset, qty in totals.items() if qty > 0 and asset != quote}
    reserve[quote] = totals.get(quote, ZERO) - investment
    return reserve

"""Smart Sync (SPEC section 3): a lead change and the equities in, a follower's intents out. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction

from bot.core.model import ZERO, FollowerView, Intent, LeadChange, Leg, Market, Plan, Skip, decimal_of, sign


def _side(signed: Decimal | Fraction) -> str:
    return "buy" if signed > 0 else "sell"


def _close(symbol: str, position: Decimal) -> Intent:
    return Intent(Leg.CLOSE, symbol, _side(-position), abs(position), reduce_only=True)


def slippage_exceeded(side: str, lead_price: Decimal | None, price: Decimal, max_pct: Decimal) -> bool:
    """True when `price` is worse than the lead's fill by more than `max_pct` percent."""
    if lead_price is None or lead_price <= 0:
        return False
    limit = lead_price * max_pct / 100
    return price - lead_price > limit if side == "buy" else lead_price - price > limit


def gross_notional(positions: Mapping[str, Decimal], marks: Mapping[str, Decimal]) -> Decimal:
    return sum((abs(qty) * marks[symbol] for symbol, qty in positions.items() if qty), ZERO)


def _open(
    follower: FollowerView,
    market: Market,
    position: Decimal,
    delta: Fraction,
    lead_price: Decimal | None,
    price: Decimal,
    others_gross: Decimal,
) -> Plan:
    """Opens `delta` (signed, base units) on top of `position`, under the slippage guard and leverage cap."""
    symbol = market.symbol
    side = _side(delta)
    if follower.copy_equity <= 0:  # nothing to size on (and a negative ratio would invert the copy)
        return Plan(skips=(Skip("sync_skipped_no_equity", symbol, {"copy_equity": str(follower.copy_equity)}),))
    if slippage_exceeded(side, lead_price, price, follower.max_slippage_pct):
        detail = {
            "side": side,
            "lead_price": str(lead_price),
            "price": str(price),
            "max_slippage_pct": str(follower.max_slippage_pct),
        }
        return Plan(skips=(Skip("sync_skipped_slippage", symbol, detail),))
    cap = follower.max_leverage * follower.copy_equity
    allowed_abs = max(Fraction(0), Fraction(cap - others_gross) / Fraction(price))
    target = Fraction(position) + delta
    clipped: tuple[dict[str, str], ...] = ()
    if abs(target) > allowed_abs:
        wanted = delta
        target = sign(target) * allowed_abs
        delta = target - Fraction(position)
        clipped = (
            {
                "symbol": symbol,
                "wanted_qty": str(decimal_of(abs(wanted))),
                "headroom": str(cap - others_gross - abs(position) * price),
                "max_leverage": str(follower.max_leverage),
            },
        )
        if sign(delta) != sign(wanted) or delta == 0:
            detail = {"wanted_qty": str(decimal_of(abs(wanted))), "max_leverage": str(follower.max_leverage)}
            return Plan(skips=(Skip("sync_skipped_no_headroom", symbol, detail),))
    qty = abs(market.truncate(delta))
    if not market.tradable(qty, price):
        detail = {
            "wanted_qty": str(decimal_of(abs(delta))),
            "qty": str(qty),
            "min_qty": str(market.min_qty),
            "min_notional": str(market.min_notional),
            "price": str(price),
        }
        return Plan(skips=(Skip("sync_skipped_below_minimum", symbol, detail),), clipped=clipped)
    return Plan(intents=(Intent(Leg.OPEN, symbol, side, qty, reduce_only=False),), clipped=clipped)


def plan_change(
    change: LeadChange,
    lead_equity: Decimal,
    follower: FollowerView,
    market: Market,
    marks: Mapping[str, Decimal],
) -> Plan:
    """The follower's orders for one lead change, per the SPEC section 3 table and the rules under it.

    `marks` holds a current price for every symbol the follower holds and for `change.symbol`; the price
    of `change.symbol` is also the price the follower's order is expected to fill at.
    """
    symbol = change.symbol
    price = marks[symbol]
    position = follower.position(symbol)
    ratio = Fraction(follower.copy_equity) / Fraction(lead_equity) if lead_equity > 0 else Fraction(0)
    others = {s: q for s, q in follower.positions.items() if s != symbol}
    others_gross = gross_notional(others, marks)
    kind = change.kind
    if position and change.now and sign(position) != sign(change.now) and kind != "reduce":
        kind = "flip"  # a follower on the wrong side (it never should be) is treated as a flip

    if kind == "close":
        return Plan(intents=(_close(symbol, position),)) if position else Plan()
    if kind == "reduce":
        if not position:
            return Plan()
        fraction = 1 - Fraction(abs(change.now)) / Fraction(abs(change.prev))
        qty = market.truncate(Fraction(abs(position)) * fraction)
        if qty == 0:
            wanted = decimal_of(Fraction(abs(position)) * fraction)
            detail = {"wanted_qty": str(wanted), "step": str(market.step), "leg": "reduce"}
            return Plan(skips=(Skip("sync_skipped_below_minimum", symbol, detail),))
        return Plan(intents=(Intent(Leg.REDUCE, symbol, _side(-position), qty, reduce_only=True),))
    if kind == "flip":
        closing = (_close(symbol, position),) if position else ()
        opened = _open(follower, market, ZERO, ratio * Fraction(change.now), change.fill_price, price, others_gross)
        return Plan(closing + opened.intents, opened.skips, opened.clipped)
    delta = ratio * Fraction(change.now - change.prev)
    return _open(follower, market, position, delta, change.fill_price, price, others_gross)


def plan_bootstrap(
    lead_positions: Mapping[str, Decimal],
    lead_equity: Decimal,
    follower: FollowerView,
    markets: Mapping[str, Market],
    marks: Mapping[str, Decimal],
) -> Plan:
    """`copy_existing = true`: opens `r · L` for every position the lead already holds, at market."""
    intents: list[Intent] = []
    skips: list[Skip] = []
    clipped: list[dict[str, str]] = []
    positions = dict(follower.positions)
    for symbol in sorted(lead_positions):
        lead_qty = lead_positions[symbol]
        if not lead_qty or symbol not in markets:
            continue
        view = FollowerView(
            follower.name, follower.copy_equity, positions, follower.max_leverage, follower.max_slippage_pct
        )
        change = LeadChange(0, symbol, ZERO, lead_qty, None)
        plan = plan_change(change, lead_equity, view, markets[symbol], marks)
        intents.extend(plan.intents)
        skips.extend(plan.skips)
        clipped.extend(plan.clipped)
        for intent in plan.intents:
            positions[symbol] = positions.get(symbol, ZERO) + intent.signed_qty
    return Plan(tuple(intents), tuple(skips), tuple(clipped))


def plan_correction(symbol: str, expected: Decimal, actual: Decimal, market: Market) -> tuple[Intent, ...]:
    """Orders that bring a follower's actual position back to the expected one (reconciliation)."""
    if expected == actual:
        return ()
    if actual and (expected == 0 or sign(actual) != sign(expected)):
        rest = () if expected == 0 else _correction_open(symbol, expected, market)
        return (_close(symbol, actual), *rest)
    diff = market.truncate(expected - actual)
    if diff == 0:
        return ()
    if abs(expected) < abs(actual):
        return (Intent(Leg.REDUCE, symbol, _side(diff), abs(diff), reduce_only=True),)
    return _correction_open(symbol, diff, market)


def _correction_open(symbol: str, delta: Decimal, market: Market) -> tuple[Intent, ...]:
    qty = abs(market.truncate(delta))
    return (Intent(Leg.OPEN, symbol, _side(delta), qty, reduce_only=False),) if qty else ()


def reconcile_target(expected: Decimal, lead_holds: bool, caught_up: bool) -> Decimal:
    """What a follower should hold in a symbol at reconciliation (SPEC 5): what its own fills add up to,
    except where the lead is flat and the follower has copied every lead change: nothing. (Before it has
    caught up, a change still in its queue must not be mistaken for a stray position.)"""
    return ZERO if not lead_holds and caught_up else expected

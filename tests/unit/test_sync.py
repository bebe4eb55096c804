"""Smart Sync: SPEC section 3 examples A, B, C, one case per table row, and hypothesis properties."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bot.core.model import FollowerView, Intent, LeadChange, Leg, Market, lead_fill_price, sign
from bot.core.sync import gross_notional, plan_bootstrap, plan_change, plan_correction, slippage_exceeded

D = Decimal
BTC = Market("BTCUSDT", D("0.001"), D("0.001"), D("100"))
ETH = Market("ETHUSDT", D("0.001"), D("0.001"), D("20"))
SOL = Market("SOLUSDT", D("1"), D("1"), D("5"))
MARKS = {"BTCUSDT": D(50000), "ETHUSDT": D(3000), "SOLUSDT": D(150)}


def follower(
    equity: str = "1000", positions: dict[str, Decimal] | None = None, lev: str = "5", slip: str = "0.5"
) -> FollowerView:
    return FollowerView("f", D(equity), positions or {}, D(lev), D(slip))


def change(symbol: str, prev: str, now: str, fill: str | None = None) -> LeadChange:
    return LeadChange(1, symbol, D(prev), D(now), D(fill) if fill else None)


def test_example_a_open_proportional_to_equity() -> None:
    plan = plan_change(change("BTCUSDT", "0", "0.02", "50000"), D(10000), follower(), BTC, MARKS)
    assert plan.intents == (Intent(Leg.OPEN, "BTCUSDT", "buy", D("0.002"), False),)


def test_example_b_reduce_that_truncates_to_zero_is_skipped() -> None:
    plan = plan_change(
        change("BTCUSDT", "0.02", "0.015"), D(10000), follower(positions={"BTCUSDT": D("0.002")}), BTC, MARKS
    )
    assert plan.intents == ()
    (skip,) = plan.skips
    assert skip.event == "sync_skipped_below_minimum" and D(skip.detail["wanted_qty"]) == D("0.0005")


def test_example_c_open_clipped_to_leverage_headroom() -> None:
    view = follower(positions={"BTCUSDT": D("0.09")})  # 4,500 notional: 4.5x of 1,000
    plan = plan_change(change("ETHUSDT", "0", "5", "3000"), D(10000), view, ETH, MARKS)  # lead adds 15,000
    assert plan.intents == (Intent(Leg.OPEN, "ETHUSDT", "buy", D("0.166"), False),)  # 500 / 3000 truncated
    (clip,) = plan.clipped
    assert clip["wanted_qty"] == "0.5" and D(clip["headroom"]) == 500


def test_row_open_short() -> None:
    plan = plan_change(change("ETHUSDT", "0", "-2", "3000"), D(20000), follower(), ETH, MARKS)
    assert plan.intents == (Intent(Leg.OPEN, "ETHUSDT", "sell", D("0.1"), False),)


def test_row_increase_opens_r_times_the_difference() -> None:
    view = follower(positions={"ETHUSDT": D("0.1")})
    plan = plan_change(change("ETHUSDT", "2", "3", "3000"), D(20000), view, ETH, MARKS)
    assert plan.intents == (Intent(Leg.OPEN, "ETHUSDT", "buy", D("0.05"), False),)


def test_row_reduce_by_the_lead_fraction() -> None:
    view = follower(positions={"ETHUSDT": D("-0.3")})
    plan = plan_change(change("ETHUSDT", "-3", "-1"), D(20000), view, ETH, MARKS)  # φ = 2/3
    assert plan.intents == (Intent(Leg.REDUCE, "ETHUSDT", "buy", D("0.2"), True),)


def test_row_close_closes_the_whole_follower_position() -> None:
    view = follower(positions={"SOLUSDT": D("7")})
    plan = plan_change(change("SOLUSDT", "70", "0"), D(20000), view, SOL, MARKS)
    assert plan.intents == (Intent(Leg.CLOSE, "SOLUSDT", "sell", D("7"), True),)


def test_row_flip_closes_then_opens_r_times_the_new_position() -> None:
    view = follower(positions={"ETHUSDT": D("0.1")})
    plan = plan_change(change("ETHUSDT", "2", "-4", "2990"), D(20000), view, ETH, {**MARKS, "ETHUSDT": D(2990)})
    assert plan.intents == (
        Intent(Leg.CLOSE, "ETHUSDT", "sell", D("0.1"), True),
        Intent(Leg.OPEN, "ETHUSDT", "sell", D("0.2"), False),
    )


def test_open_below_min_notional_is_skipped() -> None:
    plan = plan_change(change("BTCUSDT", "0", "0.02", "50000"), D(10000), follower("150"), BTC, MARKS)
    assert plan.intents == () and plan.skips[0].event == "sync_skipped_below_minimum"


def test_slippage_guard_skips_an_open_but_never_a_close() -> None:
    moved = {**MARKS, "ETHUSDT": D("3020")}  # 0.67 % worse than the lead's 3,000 for a buy
    opened = plan_change(change("ETHUSDT", "0", "2", "3000"), D(20000), follower(), ETH, moved)
    assert opened.intents == () and opened.skips[0].event == "sync_skipped_slippage"
    closed = plan_change(change("ETHUSDT", "2", "0"), D(20000), follower(positions={"ETHUSDT": D("0.1")}), ETH, moved)
    assert closed.intents == (Intent(Leg.CLOSE, "ETHUSDT", "sell", D("0.1"), True),)
    assert not slippage_exceeded("sell", D(3000), D(3020), D("0.5"))  # a better price never trips it


def test_no_headroom_skips_the_open() -> None:
    view = follower(positions={"BTCUSDT": D("0.1")})  # 5,000 = 5x already
    plan = plan_change(change("ETHUSDT", "0", "1", "3000"), D(10000), view, ETH, MARKS)
    assert plan.intents == () and plan.skips[0].event == "sync_skipped_no_headroom"


def test_lead_fill_price_from_entry_prices() -> None:
    assert lead_fill_price(D(0), D(0), D(2), D(3000)) == D(3000)
    assert lead_fill_price(D(2), D(3000), D(3), D(3100)) == D(3300)  # (9300 - 6000) / 1
    assert lead_fill_price(D(3), D(3100), D(1), D(3100)) is None
    assert lead_fill_price(D(2), D(3000), D(-1), D(2900)) == D(2900)


def test_bootstrap_copies_existing_positions_under_the_cap() -> None:
    plan = plan_bootstrap(
        {"BTCUSDT": D("0.02"), "ETHUSDT": D("-5")}, D(10000), follower(), {"BTCUSDT": BTC, "ETHUSDT": ETH}, MARKS
    )
    assert plan.intents == (
        Intent(Leg.OPEN, "BTCUSDT", "buy", D("0.002"), False),
        Intent(Leg.OPEN, "ETHUSDT", "sell", D("0.5"), False),
    )


def test_correction_plans() -> None:
    assert plan_correction("ETHUSDT", D("0.1"), D("0.1"), ETH) == ()
    assert plan_correction("ETHUSDT", D(0), D("0.3"), ETH) == (Intent(Leg.CLOSE, "ETHUSDT", "sell", D("0.3"), True),)
    assert plan_correction("ETHUSDT", D("0.1"), D("0.3"), ETH) == (
        Intent(Leg.REDUCE, "ETHUSDT", "sell", D("0.2"), True),
    )
    assert plan_correction("ETHUSDT", D("0.3"), D("0.1"), ETH) == (Intent(Leg.OPEN, "ETHUSDT", "buy", D("0.2"), False),)
    assert plan_correction("ETHUSDT", D("-0.1"), D("0.2"), ETH) == (
        Intent(Leg.CLOSE, "ETHUSDT", "sell", D("0.2"), True),
        Intent(Leg.OPEN, "ETHUSDT", "sell", D("0.1"), False),
    )


# -- properties -----------------------------------------------------------------------------------

quantities = st.decimals(min_value=-50, max_value=50, places=3, allow_nan=False, allow_infinity=False)
equities = st.decimals(min_value=10, max_value=1_000_000, places=2, allow_nan=False, allow_infinity=False)
prices = st.decimals(min_value=1000, max_value=100000, places=1, allow_nan=False, allow_infinity=False)


@settings(max_examples=400, deadline=None)
@given(
    prev=quantities,
    now=quantities,
    lead_eq=equities,
    f_eq=equities,
    held=quantities,
    other=quantities,
    price=prices,
    lev=st.integers(1, 5),
)
def test_properties_of_every_plan(
    prev: Decimal,
    now: Decimal,
    lead_eq: Decimal,
    f_eq: Decimal,
    held: Decimal,
    other: Decimal,
    price: Decimal,
    lev: int,
) -> None:
    assume(prev != now)
    marks = {"BTCUSDT": D(50000), "ETHUSDT": price}
    held = D(0) if prev == 0 else held  # a follower holds something only where the lead did
    if held and sign(held) != sign(prev):
        held = -held
    view = FollowerView("f", f_eq, {"ETHUSDT": held, "BTCUSDT": abs(other) / 1000}, D(lev), D("0.5"))
    plan = plan_change(LeadChange(1, "ETHUSDT", prev, now, price), lead_eq, view, ETH, marks)
    position = held
    for intent in plan.intents:
        assert intent.qty > 0 and intent.qty % ETH.step == 0  # quantities always on the step
        before = position
        position += intent.signed_qty
        if intent.reduce_only:
            assert abs(position) <= abs(before) and (position == 0 or sign(position) == sign(before))
        else:
            after = {"ETHUSDT": position, "BTCUSDT": view.positions["BTCUSDT"]}
            assert gross_notional(after, marks) <= lev * f_eq  # never above the cap after an open
    if now == 0:
        assert position == 0  # a close always flattens
    else:
        assert position == 0 or sign(position) == sign(now)  # never on the other side of the lead
    assert len({(i.leg, i.side) for i in plan.intents}) == len(plan.intents)  # one order per leg


def test_ratios_are_exact_before_truncation() -> None:
    """0.3 · (1 − 2/3) is 0.1 exactly; 28-digit decimals would give 0.0999… and truncate a whole step away."""
    reduce = plan_change(change("ETHUSDT", "3", "2"), D(10000), follower(positions={"ETHUSDT": D("0.3")}), ETH, MARKS)
    assert reduce.intents == (Intent(Leg.REDUCE, "ETHUSDT", "sell", D("0.1"), True),)
    opened = plan_change(
        change("ETHUSDT", "0", "3", "3000"), D(3000), follower("2000", lev="5"), ETH, {**MARKS, "ETHUSDT": D(1000)}
    )  # r = 2/3: 2/3 · 3 = 2 exactly
    assert opened.intents == (Intent(Leg.OPEN, "ETHUSDT", "buy", D("2"), False),)


@settings(max_examples=300, deadline=None)
@given(held=st.integers(1, 5000), prev=st.integers(1, 500), now=st.integers(1, 500))
def test_reduce_is_the_exact_fraction_truncated(held: int, prev: int, now: int) -> None:
    assume(now < prev)
    position = D(held) / 1000
    plan = plan_change(
        LeadChange(1, "ETHUSDT", D(prev), D(now), None), D(10000), follower(positions={"ETHUSDT": position}), ETH, MARKS
    )
    exact_thousandths = (held * (prev - now)) // prev  # floor of the exact rational, in steps
    expected = D(exact_thousandths) / 1000
    assert sum((i.qty for i in plan.intents), D(0)) == expected

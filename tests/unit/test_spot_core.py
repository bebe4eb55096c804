"""Spot Smart Sync (SPEC section 11): example G step by step, one case per rule, hypothesis properties."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.model import Intent, LeadChange, Leg, Market
from bot.core.spot import (
    SpotFollowerView,
    check_holding,
    holding_after_fill,
    plan_spot_bootstrap,
    plan_spot_change,
    plan_spot_sale,
    reserve_at_start,
    spot_copy_equity,
    spot_kind,
    usdt_after_fill,
)

D = Decimal
BTC = Market("BTC/USDT", D("0.00001"), D("0.00001"), D("5"))
ETH = Market("ETH/USDT", D("0.0001"), D("0.0001"), D("5"))
SOL = Market("SOL/USDT", D("0.001"), D("0.001"), D("5"))
MARKETS = {m.symbol: m for m in (BTC, ETH, SOL)}
PRICES = {"BTC/USDT": D(50000), "ETH/USDT": D(3000), "SOL/USDT": D(150)}
FEE = D("0.001")


def view(usdt: str = "1000", holdings: dict[str, Decimal] | None = None, slip: str = "0.5") -> SpotFollowerView:
    return SpotFollowerView("f", D(usdt), holdings or {}, D(slip))


def change(prev: str, now: str, fill: str | None = None, symbol: str = "BTC/USDT") -> LeadChange:
    return LeadChange(1, symbol, D(prev), D(now), D(fill) if fill else None)


def test_example_g_step_by_step() -> None:
    """Lead 10,000 USDT buys 0.02 BTC at 50,000 (fee in BTC: holding 0.01998); follower with 1,000 (r = 0.1)."""
    rows = [
        # lead prev, lead now, follower's order, follower's copy holding after its fill
        ("0", "0.01998", ("buy", "0.00199"), "0.00198801"),
        ("0.01998", "0.00498", ("sell", "0.00149"), "0.00049801"),
        ("0.00498", "0", ("sell", "0.00049"), "0.00000801"),
    ]
    usdt, holding = D(1000), D(0)
    lead_equity = D(10000)  # at each change's price, the lead's equity is unchanged up to its fees
    for prev, now, (side, qty), after in rows:
        follower = view(str(usdt), {"BTC/USDT": holding} if holding else {})
        plan = plan_spot_change(change(prev, now, "50000"), lead_equity, follower, BTC, PRICES)
        (intent,) = plan.intents
        assert (intent.side, intent.qty) == (side, D(qty))
        fee_base = intent.qty * FEE if side == "buy" else D(0)
        fee_usdt = intent.qty * D(50000) * FEE if side == "sell" else D(0)
        holding = holding_after_fill(holding, side, intent.qty, fee_base)
        usdt = usdt_after_fill(usdt, side, intent.qty, D(50000), fee_usdt)
        assert holding == D(after)
    assert usdt == D(1000) - D("99.50") + D("74.50") - D("0.0745") + D("24.50") - D("0.0245")
    # the dust: below the minimum quantity, nothing more is sold, and it is valued in copy equity
    dust = plan_spot_change(change("0.00498", "0"), lead_equity, view(str(usdt), {"BTC/USDT": holding}), BTC, PRICES)
    assert dust.intents == () and dust.skips[0].event == "sync_skipped_below_minimum"
    assert spot_copy_equity(usdt, {"BTC/USDT": holding}, PRICES) == usdt + D("0.4005")


def test_kinds() -> None:
    assert spot_kind(change("0", "1"), BTC) == "buy"
    assert spot_kind(change("1", "0.5"), BTC) == "sell"
    assert spot_kind(change("1", "0.000009"), BTC) == "sell_out"  # below the minimum quantity
    assert spot_kind(change("1", "1"), BTC) == "none"


def test_buy_is_r_times_the_lead_increase_on_copy_equity_with_holdings() -> None:
    # copy equity 500 USDT + 0.01 BTC (500) = 1,000; the lead (10,000) buys 10 SOL: r = 0.1 -> 1 SOL
    follower = view("500", {"BTC/USDT": D("0.01")})
    plan = plan_spot_change(change("0", "10", "150", "SOL/USDT"), D(10000), follower, SOL, PRICES)
    assert plan.intents == (Intent(Leg.OPEN, "SOL/USDT", "buy", D("1.000"), False),)


def test_buy_clipped_by_cash_then_skipped_with_no_cash() -> None:
    # copy equity 1,000 but only 100 USDT free of the copy: 2 ETH wanted (6,000), 100 / (3000 × 1.005) affordable
    follower = view("100", {"BTC/USDT": D("0.018")})
    plan = plan_spot_change(change("0", "20", "3000", "ETH/USDT"), D(10000), follower, ETH, PRICES)
    (intent,) = plan.intents
    assert intent.qty == D("0.0331") and intent.qty * D(3000) * D("1.005") <= D(100)
    (clip,) = plan.clipped
    assert clip["wanted_qty"] == "2" and clip["copy_usdt"] == "100"
    broke = view("4", {"BTC/USDT": D("0.019")})
    plan = plan_spot_change(change("0", "20", "3000", "ETH/USDT"), D(10000), broke, ETH, PRICES)
    assert plan.intents == () and plan.skips[0].event == "sync_skipped_no_cash"


def test_slippage_guards_buys_only() -> None:
    follower = view("1000", {"BTC/USDT": D("0.01")})
    buy = plan_spot_change(change("0.01", "0.02", "49000"), D(10000), follower, BTC, PRICES)  # 2 % worse
    assert buy.intents == () and buy.skips[0].event == "sync_skipped_slippage"
    sale = plan_spot_change(change("0.02", "0.01", "52000"), D(10000), follower, BTC, PRICES)
    assert sale.intents == (Intent(Leg.REDUCE, "BTC/USDT", "sell", D("0.005"), False),)


def test_buy_below_minimum_is_skipped() -> None:
    plan = plan_spot_change(change("0", "0.0009", "50000"), D(10000), view("1000"), BTC, PRICES)  # 4.5 USDT
    assert plan.intents == () and plan.skips[0].event == "sync_skipped_below_minimum"


def test_sale_with_nothing_copied_is_nothing() -> None:
    assert plan_spot_change(change("1", "0.5"), D(10000), view(), BTC, PRICES).intents == ()
    assert plan_spot_change(change("1", "0"), D(10000), view(), BTC, PRICES).intents == ()


def test_bootstrap_buys_r_times_each_holding_within_the_cash() -> None:
    lead = {"BTC/USDT": D("0.1"), "ETH/USDT": D("1"), "SOL/USDT": D("0")}  # 5,000 + 3,000 of a 10,000 lead
    plan = plan_spot_bootstrap(lead, D(10000), view("1000"), MARKETS, PRICES)
    assert plan.intents == (
        Intent(Leg.OPEN, "BTC/USDT", "buy", D("0.01"), False),
        Intent(Leg.OPEN, "ETH/USDT", "buy", D("0.1"), False),
    )
    # 300 USDT of copy cash for about the same copy equity (the rest in SOL): BTC takes it all, ETH gets nothing
    short = plan_spot_bootstrap(lead, D(10000), view("300", {"SOL/USDT": D("4.666")}), MARKETS, PRICES)
    assert short.intents == (Intent(Leg.OPEN, "BTC/USDT", "buy", D("0.00597"), False),)  # 300 / (50,000 × 1.005)
    assert [c["symbol"] for c in short.clipped] == ["BTC/USDT"]
    assert [(s.symbol, s.event) for s in short.skips] == [("ETH/USDT", "sync_skipped_no_cash")]


def test_sale_of_a_fraction_for_a_decrease_and_all_for_a_stop() -> None:
    holdings = {"BTC/USDT": D("0.00398801"), "ETH/USDT": D("0.1"), "SOL/USDT": D("0.0004")}
    half = plan_spot_sale(holdings, Fraction(1, 2), MARKETS, PRICES)
    assert [(i.symbol, i.qty, i.leg) for i in half.intents] == [
        ("BTC/USDT", D("0.00199"), Leg.REDUCE),
        ("ETH/USDT", D("0.05"), Leg.REDUCE),
    ]
    assert [s.symbol for s in half.skips] == ["SOL/USDT"]  # dust: below the minimum quantity
    everything = plan_spot_sale(holdings, Fraction(1), MARKETS, PRICES)
    assert [(i.symbol, i.qty, i.leg) for i in everything.intents] == [
        ("BTC/USDT", D("0.00398"), Leg.CLOSE),
        ("ETH/USDT", D("0.1"), Leg.CLOSE),
    ]
    with pytest.raises(ValueError, match="fraction"):
        plan_spot_sale(holdings, Fraction(0), MARKETS, PRICES)


def test_reserve_is_what_the_account_held_less_the_investment() -> None:
    totals = {"USDT": D(1500), "BTC": D("0.5"), "DOGE": D(0)}
    assert reserve_at_start(totals, D(1200), D(1000)) == {"BTC": D("0.5"), "USDT": D(500)}
    assert reserve_at_start(totals, D(900), D(1000)) is None  # free USDT does not cover the investment


@pytest.mark.parametrize(
    ("copy", "reserve", "account", "kept", "reserve_after", "short"),
    [
        ("1", "0.5", "2", "1", "0.5", "0"),  # more than both: the user added some
        ("1", "0.5", "1.2", "1", "0.2", "0"),  # the user sold some of their own first
        ("1", "0.5", "0.7", "0.7", "0", "0.3"),  # less than the copy holding: manual intervention
        ("1", "0", "0", "0", "0", "1"),
    ],
)
def test_check_holding(copy: str, reserve: str, account: str, kept: str, reserve_after: str, short: str) -> None:
    check = check_holding(D(copy), D(reserve), D(account))
    assert (check.copy_holding, check.reserve, check.short) == (D(kept), D(reserve_after), D(short))


qty_st = st.decimals(min_value=D("0"), max_value=D("50"), places=8)
usdt_st = st.decimals(min_value=D("0"), max_value=D("100000"), places=2)


@settings(max_examples=300, deadline=None)
@given(
    usdt=usdt_st,
    holding=qty_st,
    prev=qty_st,
    now=qty_st,
    lead_equity=st.decimals(min_value=D("10"), max_value=D("10000000"), places=2),
    price=st.decimals(min_value=D("1"), max_value=D("100000"), places=2),
    slip=st.decimals(min_value=D("0"), max_value=D("5"), places=2),
)
def test_properties_of_a_change(
    usdt: Decimal, holding: Decimal, prev: Decimal, now: Decimal, lead_equity: Decimal, price: Decimal, slip: Decimal
) -> None:
    follower = view(str(usdt), {"BTC/USDT": holding}, str(slip))
    plan = plan_spot_change(change(str(prev), str(now)), lead_equity, follower, BTC, {"BTC/USDT": price})
    for intent in plan.intents:
        assert intent.qty % BTC.step == 0 and intent.qty > 0  # on the step
        assert BTC.tradable(intent.qty, price)
        if intent.side == "sell":
            assert now < prev and intent.qty <= holding  # never more than the copy holding: a reserve is never sold
        else:
            assert now > prev and intent.qty * price <= usdt  # never a buy above the copy USDT
    assert len(plan.intents) <= 1


@settings(max_examples=200, deadline=None)
@given(
    holdings=st.dictionaries(st.sampled_from(sorted(MARKETS)), qty_st, max_size=3),
    numerator=st.integers(min_value=1, max_value=100),
)
def test_properties_of_a_sale(holdings: dict[str, Decimal], numerator: int) -> None:
    plan = plan_spot_sale(holdings, Fraction(numerator, 100), MARKETS, PRICES)
    for intent in plan.intents:
        assert intent.side == "sell" and 0 < intent.qty <= holdings[intent.symbol]
        assert intent.qty % MARKETS[intent.symbol].step == 0


@settings(max_examples=200, deadline=None)
@given(
    lead=st.dictionaries(st.sampled_from(sorted(MARKETS)), qty_st, max_size=3),
    usdt=usdt_st,
    sol=qty_st,
)
def test_properties_of_a_bootstrap(lead: dict[str, Decimal], usdt: Decimal, sol: Decimal) -> None:
    plan = plan_spot_bootstrap(lead, D(100000), view(str(usdt), {"SOL/USDT": sol}), MARKETS, PRICES)
    assert sum((i.qty * PRICES[i.symbol] for i in plan.intents), D(0)) <= usdt  # the cash cap over all buys
    assert all(i.side == "buy" and i.qty % MARKETS[i.symbol].step == 0 for i in plan.intents)

"""The paper exchange's trading engine without HTTP: table cases and hypothesis properties."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.paper import errors
from bot.paper.accounts import OrderRequest, max_notional, triggers
from bot.paper.ledger import Ledger
from bot.paper.markets import DEFAULT_MARKETS, decimals_of
from bot.paper.state import Account

D = Decimal


def make_ledger(usdt: str = "100000") -> tuple[Ledger, Account]:
    ledger = Ledger(
        DEFAULT_MARKETS,
        {"BTCUSDT": D(50000), "ETHUSDT": D(3000), "SOLUSDT": D(150)},
        (D("0.0002"), D("0.0005")),
        lambda: 1_700_000_000_000,
    )
    account = Account("a", "key-a-000000", "secret-a-000000", "a@p", D(usdt))
    ledger.add_account(account)
    return ledger, account


def market(symbol: str, side: str, qty: str, **kw: object) -> OrderRequest:
    return OrderRequest(symbol, side, "MARKET", D(qty), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("qty", "code"), [("0.0015", -1111), ("0", -4003), ("-0.001", -4003), ("121", -4005)])
def test_quantity_checks(qty: str, code: int) -> None:
    ledger, account = make_ledger()
    with pytest.raises(errors.BinanceError) as caught:
        ledger.place_order(account, market("BTCUSDT", "BUY", qty))
    assert caught.value.code == code


@pytest.mark.parametrize(
    ("price", "code"),
    [("50000.123", -1111), ("50000.05", -4014), ("0", -4001), ("500.0", -4013), ("5000000", -4016)],
)
def test_price_checks(price: str, code: int) -> None:
    ledger, account = make_ledger()
    with pytest.raises(errors.BinanceError) as caught:
        ledger.place_order(account, OrderRequest("BTCUSDT", "BUY", "LIMIT", D("0.01"), D(price)))
    assert caught.value.code == code


def test_unknown_symbol_side_and_type() -> None:
    ledger, account = make_ledger()
    cases = [
        (market("DOGEUSDT", "BUY", "1"), -1121),
        (market("BTCUSDT", "HOLD", "1"), -1117),
        (OrderRequest("BTCUSDT", "BUY", "ICEBERG", D(1)), -1116),
        (OrderRequest("BTCUSDT", "BUY", "STOP_MARKET", D(1)), -4120),
    ]
    for request, code in cases:
        with pytest.raises(errors.BinanceError) as caught:
            ledger.place_order(account, request)
        assert caught.value.code == code


def test_leverage_caps_position_by_bracket() -> None:
    ledger, account = make_ledger("10000000")
    assert max_notional(ledger.markets["BTCUSDT"], 125) == D(50000)
    assert max_notional(ledger.markets["BTCUSDT"], 100) == D(250000)
    ledger.set_leverage(account, "BTCUSDT", "125")
    with pytest.raises(errors.BinanceError) as caught:
        ledger.place_order(account, market("BTCUSDT", "BUY", "1.001"))  # 50,050 > 50,000 at 125x
    assert caught.value.code == -2027


def test_stop_and_take_profit_trigger_directions() -> None:
    assert triggers("STOP_MARKET", "SELL", D(100), D(99)) and not triggers("STOP_MARKET", "SELL", D(100), D(101))
    assert triggers("STOP_MARKET", "BUY", D(100), D(101)) and not triggers("STOP_MARKET", "BUY", D(100), D(99))
    assert triggers("TAKE_PROFIT_MARKET", "SELL", D(100), D(101))
    assert triggers("TAKE_PROFIT_MARKET", "BUY", D(100), D(99))


def test_decimals_of() -> None:
    assert decimals_of(D("0.0010")) == 3 and decimals_of(D("5")) == 0 and decimals_of(D("1E+1")) == 0


def test_secret_is_not_in_repr() -> None:
    _, account = make_ledger()
    assert "secret-a-000000" not in repr(account)


steps = st.lists(
    st.tuples(st.sampled_from(["BUY", "SELL"]), st.integers(1, 400), st.booleans(), st.integers(2500, 3500)),
    min_size=1,
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_wallet_moves_by_exactly_realized_pnl_minus_fees(sequence: list[tuple[str, int, bool, int]]) -> None:
    ledger, account = make_ledger()
    for side, thousandths, reduce_only, price in sequence:
        ledger.set_price("ETHUSDT", D(price))
        try:
            ledger.place_order(account, market("ETHUSDT", side, str(D(thousandths) / 1000), reduce_only=reduce_only))
        except errors.BinanceError as exc:
            assert exc.code in (-2022, -4164, -2019)
    realized = sum((t.realized_pnl for t in account.trades), D(0))
    fees = sum((t.commission for t in account.trades), D(0))
    assert account.wallet == D(100000) + realized - fees
    income = sum((i.amount for i in account.income), D(0))
    assert income == realized - fees
    position = account.position("ETHUSDT")
    net = sum((t.qty if t.side == "BUY" else -t.qty for t in account.trades), D(0))
    assert position.amount == net
    assert (position.entry_price == 0) == (position.amount == 0)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 500), st.integers(1, 900), st.sampled_from(["BUY", "SELL"]))
def test_reduce_only_never_flips_or_grows(open_qty: int, reduce_qty: int, side: str) -> None:
    ledger, account = make_ledger()
    ledger.place_order(account, market("ETHUSDT", side, str(D(open_qty) / 100)))
    before = account.position("ETHUSDT").amount
    opposite = "SELL" if side == "BUY" else "BUY"
    ledger.place_order(account, market("ETHUSDT", opposite, str(D(reduce_qty) / 100), reduce_only=True))
    after = account.position("ETHUSDT").amount
    assert abs(after) <= abs(before)
    assert after == 0 or (after > 0) == (before > 0)

"""Fidelity: ccxt's own structure validators, shape parity with captured Binance responses, error classes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import ccxt
import ccxt.async_support as ccxt_async
import pytest
from ccxt.test.exchange.base.test_balance import test_balance as validate_balance
from ccxt.test.exchange.base.test_market import test_market as validate_market
from ccxt.test.exchange.base.test_order import test_order as validate_order
from ccxt.test.exchange.base.test_position import test_position as validate_position
from ccxt.test.exchange.base.test_trade import test_trade as validate_trade

from tests.conftest import BTC, ETH
from tests.paper_harness import Paper

# real Binance responses captured by ccxt (MIT), kept in the repository: a clone alone runs these tests
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ccxt-static"


def fixture_response(method: str, description: str) -> Any:
    data = json.loads((FIXTURES / "response-binance.json").read_text())
    case = next(c for c in data["methods"][method] if c["description"] == description)
    return case["httpResponse"]


# -- ccxt's structure validators ------------------------------------------------------------------


def recording(paper: Paper, name: str = "alice") -> Any:
    """A client that keeps the raw JSON of its last response."""
    ex = paper.client(name)
    ex.enableLastJsonResponse = True
    return ex


async def _traded_client(paper: Paper) -> Any:
    ex = recording(paper)
    await ex.load_markets()
    await ex.set_leverage(20, BTC)
    # large enough against the wallet that the cross liquidation price is above zero
    await ex.create_order(BTC, "market", "buy", 0.3)
    await ex.create_order(BTC, "market", "sell", 0.1, params={"reduceOnly": True})
    await ex.create_order(ETH, "limit", "buy", 0.01, 2900)
    return ex


async def test_markets_pass_ccxt_market_validator(paper: Paper) -> None:
    ex = paper.client("alice")
    markets = await ex.load_markets()
    for market in markets.values():
        validate_market(ex, {}, "loadMarkets", market)


async def test_orders_trades_positions_pass_ccxt_validators(paper: Paper) -> None:
    ex = await _traded_client(paper)
    now = ex.milliseconds()
    orders = await ex.fetch_orders(BTC) + await ex.fetch_open_orders(ETH)
    assert len(orders) == 3
    for order in orders:
        validate_order(ex, {}, "fetchOrders", order, order["symbol"], now)
    trades = await ex.fetch_my_trades(BTC)
    assert len(trades) == 2
    for trade in trades:
        validate_trade(ex, {}, "fetchMyTrades", trade, BTC, now, False)
    positions = await ex.fetch_positions()
    assert [p["symbol"] for p in positions] == [BTC]
    for position in positions:
        # Binance v3 positionRisk has no leverage field; ccxt's own binance tests skip it as well
        validate_position(ex, {"leverage": True}, "fetchPositions", position, BTC, now)


async def test_balance_passes_ccxt_validator_while_margin_covers_initial_margin(paper: Paper) -> None:
    ex = await _traded_client(paper)
    validate_balance(ex, {}, "fetchBalance", await ex.fetch_balance())


async def test_balance_fails_free_plus_used_like_binance_when_losses_exceed_free_margin(paper: Paper) -> None:
    """Binance clamps availableBalance at 0: once margin balance < initial margin, free + used > total."""
    ex = paper.client("alice")
    await ex.set_leverage(20, BTC)
    await ex.create_order(BTC, "market", "buy", 0.3)  # 15,000 notional, 750 initial margin
    await paper.set_price("BTCUSDT", "49000")  # -300 unrealized: margin balance 692.5 < 735 initial margin
    balance = await ex.fetch_balance()
    usdt = balance["USDT"]
    assert usdt["free"] == 0 and usdt["used"] == 735 and usdt["total"] == pytest.approx(692.5)
    with pytest.raises(AssertionError, match="free and used do not sum to total"):
        validate_balance(ex, {}, "fetchBalance", balance)


# -- shape parity with real Binance responses --------------------------------------------------


def kind(value: Any) -> str:
    """A JSON value's type, with ccxt's fixture stringification of integers folded in.

    ccxt's captured fixtures store some integer fields as strings (the same `updateTime` is an integer in
    one capture and a string in another), so an integer and a string of digits count as one kind.
    """
    if isinstance(value, bool):
        return "bool"
    if value is None:
        return "null"
    if isinstance(value, int) or (isinstance(value, str) and re.fullmatch(r"-?\d+", value)):
        return "integer"
    if isinstance(value, str):
        return "decimal" if re.fullmatch(r"-?\d+\.\d+", value) else "string"
    if isinstance(value, float):
        return "decimal"
    if isinstance(value, dict):
        return "object"
    return "array"


def assert_same_shape(ours: dict[str, Any], theirs: dict[str, Any], where: str) -> None:
    assert set(ours) == set(theirs), f"{where}: keys differ: +{set(ours) - set(theirs)} -{set(theirs) - set(ours)}"
    for key, value in theirs.items():
        expected = kind(value)
        actual = kind(ours[key])
        if (expected == "integer" and actual == "decimal") or (expected == "decimal" and actual == "integer"):
            continue  # "0" vs "0.00": the same decimal string, Binance trims zeros on some fields
        assert actual == expected, f"{where}.{key}: {ours[key]!r} is {actual}, Binance sends {value!r} ({expected})"


async def test_position_risk_has_binance_shape(paper: Paper) -> None:
    ex = await _traded_client(paper)
    await ex.fetch_positions()
    theirs = fixture_response("fetchPositions", "Fetch linear positions without symbols")[0]
    assert_same_shape(ex.last_json_response[0], theirs, "positionRisk")


async def test_account_has_binance_shape(paper: Paper) -> None:
    ex = await _traded_client(paper)
    await ex.fetch_balance()
    theirs = fixture_response("fetchBalance", "Linear swap balance")
    ours = ex.last_json_response
    assert_same_shape({k: v for k, v in ours.items()}, theirs, "account")
    assert_same_shape(ours["assets"][0], theirs["assets"][0], "account.assets[USDT]")


async def test_user_trade_has_binance_shape(paper: Paper) -> None:
    ex = await _traded_client(paper)
    await ex.fetch_my_trades(BTC)
    theirs = fixture_response("fetchMyTrades", "Swap private trade")[0]
    assert_same_shape(ex.last_json_response[0], theirs, "userTrades")


async def test_order_responses_have_binance_shape(paper: Paper) -> None:
    ex = await _traded_client(paper)
    open_order = fixture_response("fetchOpenOrder", "swap open order")
    created = fixture_response("createOrders", "create swap orders")[0]
    (ours,) = await ex.fetch_open_orders(ETH)
    # the open-order capture predates `cumQty`; the create capture has it: check both, minus that field
    assert_same_shape({k: v for k, v in ours["info"].items() if k != "cumQty"}, open_order, "openOrder")
    await ex.create_order(ETH, "limit", "buy", 0.01, 2800)
    raw = ex.last_json_response
    assert_same_shape({k: v for k, v in raw.items() if k != "time"}, created, "order")


async def test_income_has_binance_shape(paper: Paper) -> None:
    ex = await _traded_client(paper)
    await paper.control("POST", "/funding", {"rate": "0.0001"})
    await ex.fetch_funding_history(BTC)
    theirs = fixture_response("fetchFundingHistory", "fetch portfolio margin funding history")[0]
    assert_same_shape(ex.last_json_response[0], theirs, "income")


async def test_symbol_config_has_binance_shape(paper: Paper) -> None:
    ex = recording(paper)
    await ex.fetch_leverages()
    theirs = fixture_response("fetchMarginMode", "linear swap fetch margin mode")[0]
    ours = ex.last_json_response[0]
    assert set(ours) == set(theirs)
    assert ours["marginType"] == theirs["marginType"] == "CROSSED"


async def test_exchange_info_filters_match_binance_market_entries(paper: Paper) -> None:
    captured = json.loads((FIXTURES / "markets-binance.json").read_text())[BTC]["info"]
    ex = recording(paper)
    await ex.load_markets()
    ours = next(s for s in ex.last_json_response["symbols"] if s["symbol"] == "BTCUSDT")
    assert set(ours) == set(captured)
    assert [f["filterType"] for f in ours["filters"]] == [f["filterType"] for f in captured["filters"]]
    for mine, real in zip(ours["filters"], captured["filters"], strict=True):
        assert set(mine) == set(real), mine["filterType"]


# -- error codes map to the same ccxt exceptions as from real Binance -----------------------------


def class_from_real_binance(code: int, msg: str, spot: bool = False) -> type[Exception]:
    """Feeds the error body to ccxt as if fapi.binance.com (api.binance.com with `spot`) had answered it;
    returns what ccxt raises."""
    exchange = ccxt.binance() if spot else ccxt.binanceusdm()
    url = "https://api.binance.com/api/v3/order" if spot else "https://fapi.binance.com/fapi/v1/order"
    body = json.dumps({"code": code, "msg": msg})
    try:
        exchange.handle_errors(400, "Bad Request", url, "POST", {}, body, json.loads(body), {}, "")
    except Exception as exc:
        return type(exc)
    raise AssertionError(f"ccxt raised nothing for {code}")


async def _error_cases(paper: Paper) -> list[tuple[int, Any]]:
    alice = paper.client("alice")
    await alice.load_markets()
    bad_key = paper.client("alice")
    bad_key.apiKey = "no-such-key-0000"
    bad_sig = paper.client("alice")
    bad_sig.secret = "wrong-secret-0000"
    late = paper.client("alice")
    late.options["recvWindow"] = 1000
    late.milliseconds = lambda: ccxt.Exchange.milliseconds() - 5000
    await alice.create_order(ETH, "limit", "buy", 0.01, 2800, {"clientOrderId": "taken-1"})
    return [
        (-2015, bad_key.fetch_balance()),
        (-1022, bad_sig.fetch_balance()),
        (-1021, late.fetch_balance()),
        (-2019, alice.create_order(BTC, "market", "buy", 0.9)),
        (-2022, alice.create_order(BTC, "market", "sell", 0.002, params={"reduceOnly": True})),
        (-4164, alice.create_order(BTC, "market", "buy", 0.001)),
        (
            -1111,
            alice.fapiPrivatePostOrder({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.0015"}),
        ),
        (-4028, alice.fapiPrivatePostLeverage({"symbol": "BTCUSDT", "leverage": 200})),
        (-4116, alice.create_order(ETH, "limit", "buy", 0.01, 2800, {"clientOrderId": "taken-1"})),
        (-2013, alice.fetch_order("12345", BTC)),
        (-2011, alice.cancel_order("12345", BTC)),
    ]


async def test_every_error_code_raises_the_class_real_binance_would(paper: Paper) -> None:
    cases = await _error_cases(paper)
    seen = []
    for code, call in cases:
        with pytest.raises(ccxt_async.BaseError) as caught:
            await call
        body = json.loads(str(caught.value).split(" ", 1)[1])
        assert body["code"] == code, f"expected {code}, got {body}"
        expected = class_from_real_binance(code, body["msg"])
        assert type(caught.value) is expected, f"{code}: {type(caught.value).__name__} != {expected.__name__}"
        seen.append((code, expected.__name__))
    assert dict(seen)[-2019] == "InsufficientFunds" and dict(seen)[-2015] == "AuthenticationError"


async def test_without_the_linear_table_ccxt_would_misclassify(paper: Paper) -> None:
    """Why the client builder applies the USDⓈ-M table: on a non-Binance host ccxt falls back to generic."""
    ex = paper.client("alice")
    ex.exceptions = ccxt.binanceusdm().exceptions
    with pytest.raises(ccxt_async.ExchangeError) as caught:
        await ex.create_order(BTC, "market", "buy", 0.9)
    assert type(caught.value) is not ccxt.InsufficientFunds

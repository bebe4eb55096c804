"""The paper exchange's Binance spot, through unmodified ccxt `binance`: validators, shapes, money, errors,
limits, the user data stream and transfers between spot wallets."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt_async
import pytest
from ccxt.test.exchange.base.test_balance import test_balance as validate_balance
from ccxt.test.exchange.base.test_market import test_market as validate_market
from ccxt.test.exchange.base.test_order import test_order as validate_order
from ccxt.test.exchange.base.test_trade import test_trade as validate_trade

from bot.venue.errors import Rejected
from bot.venue.translate import translate
from tests.daemon_harness import eventually
from tests.integration.test_paper_fidelity import FIXTURES, assert_same_shape, class_from_real_binance, fixture_response
from tests.paper_harness import ACCOUNTS, Paper, running_paper

BTC, ETH = "BTC/USDT", "ETH/USDT"
D = Decimal


def recording(paper: Paper, name: str = "alice") -> Any:
    ex = paper.spot_client(name)
    ex.enableLastJsonResponse = True
    return ex


async def balances(paper: Paper, name: str) -> dict[str, tuple[Decimal, Decimal]]:
    rows = (await paper.state(name))["spot"]["account"]["balances"]
    return {r["asset"]: (D(r["free"]), D(r["locked"])) for r in rows}


# -- ccxt's validators and Binance's shapes --------------------------------------------------------


async def test_markets_orders_trades_balance_pass_ccxt_validators(paper: Paper) -> None:
    ex = recording(paper)
    markets = await ex.load_markets()
    assert sorted(markets) == ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    for market in markets.values():
        validate_market(ex, {}, "loadMarkets", market)
    await ex.create_order(BTC, "market", "buy", 0.002)
    await ex.create_order(BTC, "market", "sell", 0.001)
    await ex.create_order(ETH, "limit", "buy", 0.01, 2900, {"timeInForce": "GTC"})
    now = ex.milliseconds()
    orders = await ex.fetch_orders(BTC) + await ex.fetch_open_orders(ETH)
    assert [o["status"] for o in orders] == ["closed", "closed", "open"]
    for order in orders:
        validate_order(ex, {}, "fetchOrders", order, order["symbol"], now)
    trades = await ex.fetch_my_trades(BTC)
    assert [t["fee"]["currency"] for t in trades] == ["BTC", "USDT"]  # a buy pays in BTC, a sale in USDT
    for trade in trades:
        validate_trade(ex, {}, "fetchMyTrades", trade, BTC, now, False)
    validate_balance(ex, {}, "fetchBalance", await ex.fetch_balance())


async def test_exchange_info_matches_binance_spot_entries(paper: Paper) -> None:
    captured = json.loads((FIXTURES / "markets-binance.json").read_text())[BTC]["info"]
    ex = recording(paper)
    await ex.load_markets()
    ours = next(s for s in ex.last_json_response["symbols"] if s["symbol"] == "BTCUSDT")
    assert set(ours) == set(captured)
    real_filters = {f["filterType"]: f for f in captured["filters"]}
    for mine in ours["filters"]:
        assert set(mine) == set(real_filters[mine["filterType"]]), mine["filterType"]
    by_type = {f["filterType"]: f for f in ours["filters"]}
    for name in ("PRICE_FILTER", "LOT_SIZE", "NOTIONAL"):  # BTCUSDT's own values, as Binance sends them
        for key in ("tickSize", "stepSize", "minQty", "minNotional"):
            if key in real_filters[name]:
                assert by_type[name][key] == real_filters[name][key], (name, key)


async def test_order_trade_and_account_answers_have_binance_spot_shapes(paper: Paper) -> None:
    ex = recording(paper)
    await ex.load_markets()
    await ex.create_order(ETH, "limit", "buy", 0.01, 2900, {"timeInForce": "GTC"})
    created = fixture_response("createOrder", "spot +selfTradePrevention +iceberg")
    assert_same_shape(ex.last_json_response, {k: v for k, v in created.items() if k != "icebergQty"}, "order (new)")
    await ex.fetch_open_orders(ETH)
    theirs = fixture_response("fetchOpenOrders", "Fetch spot open orders")[0]
    assert_same_shape(ex.last_json_response[0], theirs, "openOrders")
    market = await ex.create_order(BTC, "market", "buy", 0.001)
    await ex.fetch_order(market["id"], BTC)
    assert_same_shape(ex.last_json_response, fixture_response("fetchOrder", "Fetch spot closed order"), "order")
    await ex.fetch_my_trades(BTC)
    assert_same_shape(ex.last_json_response[0], fixture_response("fetchMyTrades", "Spot private trade")[0], "myTrades")
    await ex.fetch_balance()
    theirs = fixture_response("fetchBalance", "Spot balance")
    assert_same_shape(ex.last_json_response, theirs, "account")
    assert_same_shape(ex.last_json_response["balances"][0], theirs["balances"][0], "account.balances[0]")


# -- money -----------------------------------------------------------------------------------------


async def test_fees_in_the_asset_received_and_money_to_8_decimals(paper: Paper) -> None:
    """SPEC 11 example G's numbers on the exchange: a buy's fee in BTC, a sale's in USDT."""
    ex = paper.spot_client("alice")
    await ex.load_markets()
    await ex.create_order(BTC, "market", "buy", 0.00199)
    assert await balances(paper, "alice") == {"BTC": (D("0.00198801"), D(0)), "USDT": (D("900.5"), D(0))}
    await ex.create_order(BTC, "market", "sell", 0.00149)
    after = await balances(paper, "alice")
    assert after["BTC"] == (D("0.00049801"), D(0))
    assert after["USDT"] == (D("900.5") + D("74.5") - D("0.0745"), D(0))


async def test_market_buy_by_quote_amount_truncates_to_the_step(paper: Paper) -> None:
    ex = paper.spot_client("alice")
    await ex.load_markets()
    order = await ex.create_order(BTC, "market", "buy", None, None, {"quoteOrderQty": "100.7"})
    assert D(str(order["filled"])) == D("0.00201")  # 100.7 / 50,000 = 0.002014 on a 0.00001 step
    assert order["info"]["origQuoteOrderQty"] == "100.70000000"


async def test_limit_orders_lock_funds_rest_and_fill_as_makers(paper: Paper) -> None:
    ex = paper.spot_client("bob")
    await ex.load_markets()
    buy = await ex.create_order(BTC, "limit", "buy", 0.01, 49000, {"timeInForce": "GTC"})
    sell = await ex.create_order(BTC, "limit", "sell", 0.1, 52000, {"timeInForce": "GTC"})
    held = await balances(paper, "bob")
    assert held["USDT"] == (D(10000) - D(490), D(490)) and held["BTC"] == (D("0.4"), D("0.1"))
    expired = await ex.create_order(BTC, "limit", "buy", 0.01, 48000, {"timeInForce": "IOC"})
    assert expired["status"] == "expired"
    await paper.set_price("BTCUSDT", "48900")
    assert (await ex.fetch_order(buy["id"], BTC))["status"] == "closed"
    (trade,) = await ex.fetch_my_trades(BTC)
    assert trade["takerOrMaker"] == "maker" and trade["price"] == 49000
    await ex.cancel_order(sell["id"], BTC)
    after = await balances(paper, "bob")
    assert after["USDT"] == (D(9510), D(0))
    assert after["BTC"] == (D("0.5") + D("0.01") - D("0.00001"), D(0))


# -- errors: the codes and ccxt classes real Binance spot answers ----------------------------------


async def test_every_error_code_raises_the_class_real_binance_spot_would(paper: Paper) -> None:
    ex = paper.spot_client("alice")
    await ex.load_markets()
    await ex.create_order(ETH, "limit", "buy", 0.01, 2800, {"timeInForce": "GTC", "clientOrderId": "taken-1"})
    cases = [
        (-2010, ex.create_order(BTC, "market", "buy", 0.1)),  # 5,000 USDT of 1,000
        (-2010, ex.create_order(ETH, "limit", "buy", 0.01, 2800, {"timeInForce": "GTC", "clientOrderId": "taken-1"})),
        (-1013, ex.privatePostOrder({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.000015"})),
        (-1013, ex.create_order(BTC, "market", "buy", 0.00005)),  # 2.50 USDT: the NOTIONAL filter
        (-1121, ex.privatePostOrder({"symbol": "DOGEUSDT", "side": "BUY", "type": "MARKET", "quantity": "1"})),
        (-2013, ex.fetch_order("12345", BTC)),
        (-2011, ex.cancel_order("12345", BTC)),
    ]
    seen: list[tuple[int, str]] = []
    for code, call in cases:
        with pytest.raises(ccxt_async.BaseError) as caught:
            await call
        body = json.loads(ex.last_http_response)  # ccxt's message holds Binance's only for some codes
        assert body["code"] == code, f"expected {code}, got {body}"
        expected = class_from_real_binance(code, body["msg"], spot=True)
        assert type(caught.value) is expected, f"{code}: {type(caught.value).__name__} != {expected.__name__}"
        seen.append((code, f"{expected.__name__}: {body['msg']}"))
        if code == -1013:  # ccxt calls NOTIONAL a bad request, LOT_SIZE an invalid order: both are rejections
            error = translate(caught.value, ex, writing=True)
            assert isinstance(error, Rejected) and not error.retryable
    assert seen[0] == (-2010, "InsufficientFunds: Account has insufficient balance for requested action.")
    assert seen[3] == (-1013, "BadRequest: Filter failure: NOTIONAL")


# -- limits: spot's own budget ----------------------------------------------------------------------


async def test_spot_counts_its_own_weight_and_orders_apart_from_futures() -> None:
    config = {**ACCOUNTS, "limits": {"spot": {"request_weight_per_minute": 60, "orders_per_10s": 3}}}
    async with running_paper(config) as paper:
        spot = paper.spot_client("alice")
        futures = paper.client("alice")
        spot.enableLastJsonResponse = futures.enableLastJsonResponse = True
        await spot.load_markets()  # exchangeInfo: weight 20
        assert spot.last_response_headers["X-MBX-USED-WEIGHT-1M"] == "20"
        await futures.fetch_balance()
        # exchangeInfo 1 + account 5: the futures count, apart (another host on Binance)
        assert futures.last_response_headers["X-MBX-USED-WEIGHT-1M"] == "6"
        await spot.fetch_balance()  # 20 more
        assert spot.last_response_headers["X-MBX-USED-WEIGHT-1M"] == "40"
        for _ in range(3):
            await spot.create_order(BTC, "market", "buy", 0.0001)
        assert spot.last_response_headers["X-MBX-ORDER-COUNT-10S"] == "3"
        assert spot.last_response_headers["X-MBX-ORDER-COUNT-1D"] == "3"
        with pytest.raises(ccxt_async.DDoSProtection, match="-1015"):
            await spot.create_order(BTC, "market", "buy", 0.0001)
        with pytest.raises(ccxt_async.DDoSProtection, match="-1003"):
            await spot.fetch_balance()  # 40 + 4 orders + 20 > 60
        usage = await paper.control("GET", "/limits")
        assert usage["spot"]["accounts"] and next(iter(usage["spot"]["ips"].values()))["rejected_429"] == 1
        await futures.fetch_balance()  # futures untouched by spot's 429


# -- the user data stream, as ccxt.pro consumes it -------------------------------------------------


async def test_user_data_stream_over_the_websocket_api(paper: Paper) -> None:
    streamer = paper.spot_client("alice", stream=True)
    trader = paper.spot_client("alice")
    await asyncio.gather(streamer.load_markets(), trader.load_markets())
    watching = asyncio.ensure_future(streamer.watch_orders(BTC))
    await _connected(paper, "alice")
    order = await trader.create_order(BTC, "market", "buy", 0.002)
    seen = await asyncio.wait_for(watching, 10)
    assert seen[-1]["id"] == order["id"]
    await paper.control("POST", "/accounts/alice/spot/deposit", {"asset": "USDT", "amount": "50"})
    update = await asyncio.wait_for(streamer.watch_balance(), 10)
    assert update["USDT"]["free"] == pytest.approx(950.0)


async def _connected(paper: Paper, name: str) -> None:
    async def check() -> bool:
        return int((await paper.state(name))["spot"]["stream_connections"]) > 0

    await eventually(check, 10, f"{name}'s spot user data stream")


async def test_listen_key_stream_for_clients_that_still_use_one(paper: Paper) -> None:
    ex = paper.spot_client("alice")
    key = (await ex.publicPostUserDataStream())["listenKey"]
    async with paper.session.ws_connect(paper.url.replace("http", "ws") + f"/ws/{key}") as ws:
        await _connected(paper, "alice")
        await paper.control("POST", "/accounts/alice/spot/deposit", {"asset": "BTC", "amount": "0.1"})
        event = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
        assert event["e"] == "outboundAccountPosition" and event["B"] == [
            {"a": "BTC", "f": "0.10000000", "l": "0.00000000"}
        ]
        assert json.loads((await asyncio.wait_for(ws.receive(), 10)).data)["e"] == "balanceUpdate"


# -- transfers between spot wallets ----------------------------------------------------------------


async def test_universal_transfer_between_spot_wallets_by_email(paper: Paper) -> None:
    master = paper.client("master")
    params = {
        "fromEmail": "bob@paper.local",
        "toEmail": "alice@paper.local",
        "fromAccountType": "SPOT",
        "toAccountType": "SPOT",
        "asset": "USDT",
        "amount": "125.5",
        "clientTranId": "st-spot-1",
    }
    first = await master.sapiPostSubAccountUniversalTransfer(params)
    again = await master.sapiPostSubAccountUniversalTransfer(params)  # the same id: the same transfer, once
    assert first["tranId"] == again["tranId"]
    assert (await balances(paper, "alice"))["USDT"] == (D("1125.5"), D(0))
    assert (await balances(paper, "bob"))["USDT"] == (D("9874.5"), D(0))
    history = await master.sapiGetSubAccountUniversalTransfer({"clientTranId": "st-spot-1"})
    assert [(r["fromAccountType"], r["amount"]) for r in history["result"]] == [("SPOT", "125.5")]
    assert (await paper.wallet("alice")) == D(1000)  # the futures wallet did not move
    with pytest.raises(ccxt_async.ExchangeError, match="-8105"):
        await master.sapiPostSubAccountUniversalTransfer({**params, "amount": "999999", "clientTranId": "st-spot-2"})

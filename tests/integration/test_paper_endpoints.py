"""Every endpoint the bot relies on, exercised through unmodified ccxt against the paper exchange."""

from __future__ import annotations

from decimal import Decimal

import ccxt.async_support as ccxt
import pytest

from tests.conftest import BTC, ETH, SOL
from tests.paper_harness import Paper


async def test_load_markets_lists_three_perpetuals_with_binance_filters(paper: Paper) -> None:
    ex = paper.client("alice")
    markets = await ex.load_markets()
    assert {BTC, ETH, SOL} <= set(markets)
    btc = markets[BTC]
    assert btc["swap"] and btc["linear"] and btc["settle"] == "USDT" and btc["contractSize"] == 1
    assert btc["precision"]["amount"] == 0.001 and btc["precision"]["price"] == 0.1
    assert btc["limits"]["amount"]["min"] == 0.001 and btc["limits"]["cost"]["min"] == 100
    sol = markets[SOL]
    assert sol["precision"]["amount"] == 1 and sol["limits"]["amount"]["min"] == 1
    assert ex.amount_to_precision(BTC, 0.0029) == "0.002"
    assert ex.amount_to_precision(SOL, 3.7) == "3"


async def test_tickers_follow_the_control_price(paper: Paper) -> None:
    ex = paper.client("alice")
    await paper.set_price("BTCUSDT", "51000")
    ticker = await ex.fetch_ticker(BTC)
    assert ticker["last"] == 51000 and ticker["open"] == 50000 and ticker["high"] == 51000
    tickers = await ex.fetch_tickers([BTC, ETH])
    assert tickers[ETH]["last"] == 3000 and tickers[BTC]["last"] == 51000
    mark = await ex.fetch_mark_price(BTC)
    assert mark["markPrice"] == 51000


async def test_balance_and_positions_of_a_fresh_account(paper: Paper) -> None:
    ex = paper.client("alice")
    balance = await ex.fetch_balance()
    assert balance["USDT"] == {"free": 1000.0, "used": 0.0, "total": 1000.0}
    assert balance["info"]["totalMarginBalance"] == "1000.00000000"
    assert await ex.fetch_positions() == []


async def test_leverage_margin_mode_and_position_mode(paper: Paper) -> None:
    ex = paper.client("alice")
    answer = await ex.set_leverage(5, BTC)
    assert answer["leverage"] == 5
    leverages = await ex.fetch_leverages()
    assert leverages[BTC]["longLeverage"] == 5 and leverages[ETH]["longLeverage"] == 20
    await ex.set_margin_mode("isolated", ETH)
    assert (await ex.fetch_leverages())[ETH]["marginMode"] == "isolated"
    with pytest.raises(ccxt.MarginModeAlreadySet):
        await ex.set_margin_mode("isolated", ETH)
    await ex.set_position_mode(True)
    await ex.set_position_mode(False)
    with pytest.raises(ccxt.OperationRejected):  # -4059 No need to change position side.
        await ex.set_position_mode(False)
    with pytest.raises(ccxt.BadRequest):  # -4028 leverage out of range
        await ex.set_leverage(126, BTC)


async def test_market_order_fills_at_once_with_client_order_id(paper: Paper) -> None:
    ex = paper.client("alice")
    order = await ex.create_order(BTC, "market", "buy", 0.002, params={"clientOrderId": "cb-1-alice-BTC"})
    assert order["status"] == "closed" and order["filled"] == 0.002 and order["average"] == 50000
    assert order["clientOrderId"] == "cb-1-alice-BTC"
    by_id = await ex.fetch_order(order["id"], BTC)
    by_client_id = await ex.fetch_order(None, BTC, params={"origClientOrderId": "cb-1-alice-BTC"})
    assert by_id["id"] == by_client_id["id"] == order["id"]
    (position,) = await ex.fetch_positions()
    assert position["symbol"] == BTC and position["contracts"] == 0.002 and position["side"] == "long"
    assert position["entryPrice"] == 50000


async def test_unknown_client_order_id_is_order_not_found(paper: Paper) -> None:
    ex = paper.client("alice")
    with pytest.raises(ccxt.OrderNotFound):
        await ex.fetch_order(None, BTC, params={"origClientOrderId": "never-sent"})


async def test_limit_order_rests_then_fills_as_maker_when_price_crosses(paper: Paper) -> None:
    ex = paper.client("alice")
    order = await ex.create_order(ETH, "limit", "buy", 0.01, 2900)
    assert order["status"] == "open"
    (listed,) = await ex.fetch_open_orders(ETH)
    assert listed["id"] == order["id"] and listed["price"] == 2900
    balance = await ex.fetch_balance()
    assert balance["info"]["totalOpenOrderInitialMargin"] == "1.45000000"  # 0.01 * 2900 / 20
    await paper.set_price("ETHUSDT", "2950")
    assert (await ex.fetch_order(order["id"], ETH))["status"] == "open"
    await paper.set_price("ETHUSDT", "2890")
    filled = await ex.fetch_order(order["id"], ETH)
    assert filled["status"] == "closed" and filled["average"] == 2900
    (trade,) = await ex.fetch_my_trades(ETH)
    assert trade["takerOrMaker"] == "maker" and trade["fee"]["cost"] == pytest.approx(0.0058)  # 29 * 0.0002
    assert await ex.fetch_open_orders(ETH) == []


async def test_cancel_order_and_cancel_all(paper: Paper) -> None:
    ex = paper.client("alice")
    first = await ex.create_order(ETH, "limit", "buy", 0.01, 2800)
    await ex.create_order(ETH, "limit", "sell", 0.01, 3200)
    await ex.create_order(BTC, "limit", "buy", 0.003, 45000)
    cancelled = await ex.cancel_order(first["id"], ETH)
    assert cancelled["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound):  # -2011 Unknown order sent.
        await ex.cancel_order(first["id"], ETH)
    await ex.cancel_all_orders(ETH)
    assert await ex.fetch_open_orders(ETH) == []
    assert len(await ex.fetch_open_orders(BTC)) == 1


async def test_stop_market_triggers_on_the_price(paper: Paper) -> None:
    ex = paper.client("alice")
    await ex.create_order(BTC, "market", "buy", 0.004)
    stop = await ex.create_order(BTC, "STOP_MARKET", "sell", 0.004, None, {"triggerPrice": 48000, "reduceOnly": True})
    assert stop["status"] == "open" and stop["triggerPrice"] == 48000
    assert [o["id"] for o in await ex.fetch_open_orders(BTC, params={"trigger": True})] == [stop["id"]]
    await paper.set_price("BTCUSDT", "48500")
    assert (await ex.fetch_positions())[0]["contracts"] == 0.004
    await paper.set_price("BTCUSDT", "47900")
    assert await ex.fetch_positions() == []
    done = await ex.fetch_order(stop["id"], BTC, params={"trigger": True})
    assert done["status"] == "closed"
    trades = await ex.fetch_my_trades(BTC)
    assert [t["side"] for t in trades] == ["buy", "sell"] and trades[1]["price"] == 47900


async def test_stop_market_that_would_trigger_at_once_is_rejected(paper: Paper) -> None:
    ex = paper.client("alice")
    with pytest.raises(ccxt.OrderImmediatelyFillable):  # -2021
        await ex.create_order(BTC, "STOP_MARKET", "sell", 0.002, None, {"triggerPrice": 51000})


async def test_cancel_stop_market(paper: Paper) -> None:
    ex = paper.client("alice")
    stop = await ex.create_order(BTC, "STOP_MARKET", "buy", 0.002, None, {"triggerPrice": 52000})
    await ex.cancel_order(stop["id"], BTC, params={"trigger": True})
    assert await ex.fetch_open_orders(BTC, params={"trigger": True}) == []


async def test_reduce_only_that_would_grow_the_position_is_rejected(paper: Paper) -> None:
    ex = paper.client("alice")
    with pytest.raises(ccxt.InvalidOrder, match="-2022"):
        await ex.create_order(BTC, "market", "sell", 0.002, params={"reduceOnly": True})
    await ex.create_order(BTC, "market", "buy", 0.002)
    with pytest.raises(ccxt.InvalidOrder, match="-2022"):
        await ex.create_order(BTC, "market", "buy", 0.002, params={"reduceOnly": True})


async def test_reduce_only_is_not_held_to_min_notional_and_never_flips(paper: Paper) -> None:
    ex = paper.client("alice")
    await ex.create_order(BTC, "market", "buy", 0.003)
    small = await ex.create_order(BTC, "market", "sell", 0.001, params={"reduceOnly": True})  # 50 < 100
    assert small["filled"] == 0.001
    bigger = await ex.create_order(BTC, "market", "sell", 0.005, params={"reduceOnly": True})
    assert bigger["filled"] == 0.002
    assert await ex.fetch_positions() == []


async def test_funding_history_and_trading_fee(paper: Paper) -> None:
    ex = paper.client("alice")
    await ex.create_order(BTC, "market", "buy", 0.002)
    await paper.control("POST", "/funding", {"rate": "0.0001"})
    (funding,) = await ex.fetch_funding_history(BTC)
    assert funding["amount"] == pytest.approx(-0.01)  # 100 notional * 0.0001, paid by the long
    assert funding["code"] == "USDT" and funding["symbol"] == BTC
    fee = await ex.fetch_trading_fee(BTC)
    assert fee["maker"] == 0.0002 and fee["taker"] == 0.0005


async def test_listen_key_endpoints(paper: Paper) -> None:
    ex = paper.client("alice")
    created = await ex.fapiPrivatePostListenKey()
    again = await ex.fapiPrivatePostListenKey()
    assert created["listenKey"] == again["listenKey"]  # Binance hands back the live key
    assert await ex.fapiPrivatePutListenKey() == {"listenKey": created["listenKey"]}
    assert await ex.fapiPrivateDeleteListenKey() == {}
    with pytest.raises(ccxt.AuthenticationError):  # -1125 This listenKey does not exist.
        await ex.fapiPrivatePutListenKey()


async def test_sub_account_universal_transfer_is_idempotent_by_client_tran_id(paper: Paper) -> None:
    master = paper.client("master")
    request = {
        "fromEmail": "lead@paper.local",
        "toEmail": "alice@paper.local",
        "fromAccountType": "USDT_FUTURE",
        "toAccountType": "USDT_FUTURE",
        "asset": "USDT",
        "amount": "60.25",
        "clientTranId": "settle-2026W47-a",
    }
    first = await master.sapiPostSubAccountUniversalTransfer(request)
    second = await master.sapiPostSubAccountUniversalTransfer(request)
    assert first == second and first["clientTranId"] == "settle-2026W47-a"
    assert await paper.wallet("lead") == Decimal("19939.75")
    assert await paper.wallet("alice") == Decimal("1060.25")
    history = await master.sapiGetSubAccountUniversalTransfer({"clientTranId": "settle-2026W47-a"})
    assert history["totalCount"] == 1 and history["result"][0]["amount"] == "60.25"


async def test_sub_account_transfer_needs_the_master_key(paper: Paper) -> None:
    lead = paper.client("lead")
    with pytest.raises(ccxt.AuthenticationError):
        await lead.sapiPostSubAccountUniversalTransfer(
            {
                "fromEmail": "alice@paper.local",
                "toEmail": "lead@paper.local",
                "fromAccountType": "USDT_FUTURE",
                "toAccountType": "USDT_FUTURE",
                "asset": "USDT",
                "amount": "1",
            }
        )


async def test_client_order_id_of_an_open_order_cannot_be_reused(paper: Paper) -> None:
    ex = paper.client("alice")
    await ex.create_order(ETH, "limit", "buy", 0.01, 2800, {"clientOrderId": "dup-1"})
    with pytest.raises(ccxt.InvalidOrder, match="-4116"):
        await ex.create_order(ETH, "limit", "buy", 0.01, 2800, {"clientOrderId": "dup-1"})


async def test_control_api_state_deposit_and_withdraw(paper: Paper) -> None:
    await paper.control("POST", "/accounts/alice/deposit", {"amount": "250.5"})
    await paper.control("POST", "/accounts/alice/withdraw", {"amount": "0.5"})
    state = await paper.state("alice")
    assert state["account"]["totalWalletBalance"] == "1250.00000000"
    assert [i["incomeType"] for i in state["income"]] == ["TRANSFER", "TRANSFER"]


async def test_random_walk_is_seeded_and_moves_on_ticks(paper: Paper) -> None:
    import random

    paper.running.walk_step(random.Random(7), Decimal("0.01"))
    first = (await paper.control("GET", "/prices"))["BTCUSDT"]["last"]
    await paper.set_price("BTCUSDT", "50000")
    paper.running.walk_step(random.Random(7), Decimal("0.01"))
    second = (await paper.control("GET", "/prices"))["BTCUSDT"]["last"]
    assert first == second != "50000"
    assert Decimal(first) % Decimal("0.1") == 0
    await paper.control("POST", "/random-walk", {"seed": 3, "interval_s": 0.01, "volatility": "0.001"})
    await paper.control("POST", "/random-walk", {"enabled": False})


async def test_remaining_endpoints_through_ccxt(paper: Paper) -> None:
    """The endpoints the tests above reach only indirectly, each through the ccxt method that uses it."""
    ex = paper.client("alice")
    assert abs(await ex.fetch_time() - ex.milliseconds()) < 5000
    await ex.create_order(BTC, "market", "buy", 0.002)
    resting = await ex.create_order(ETH, "limit", "buy", 0.01, 2800)
    assert (await ex.fetch_open_order(resting["id"], ETH))["status"] == "open"
    assert len(await ex.fetch_orders(ETH)) == 1
    v2_positions = await ex.fapiPrivateV2GetPositionRisk()
    assert {row["symbol"] for row in v2_positions} == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
    assert next(r for r in v2_positions if r["symbol"] == "BTCUSDT")["leverage"] == "20"
    assert [p["symbol"] for p in (await ex.fapiPrivateV2GetAccount())["positions"]] == ["BTCUSDT"]
    v3 = (await ex.fapiPrivateV3GetAccount())["positions"]  # v3: held, or with an open order (ETH's resting buy)
    assert [(p["symbol"], p["positionAmt"]) for p in v3] == [("BTCUSDT", "0.002"), ("ETHUSDT", "0")]
    (usdt,) = await ex.fapiPrivateV2GetBalance()
    assert usdt["asset"] == "USDT"
    bids_asks = await ex.fetch_bids_asks([BTC])
    assert bids_asks[BTC]["ask"] == 50000 and bids_asks[BTC]["bid"] == 49999.9
    assert (await ex.fetch_last_prices([BTC]))[BTC]["price"] == 50000
    tiers = await ex.fetch_leverage_tiers([BTC])
    assert tiers[BTC][0]["maxLeverage"] == 125 and tiers[BTC][0]["maxNotional"] == 50000
    assert (await ex.fetch_position_mode(BTC))["hedged"] is False
    stop = await ex.create_order(BTC, "STOP_MARKET", "sell", 0.002, None, {"triggerPrice": 40000})
    assert [o["id"] for o in await ex.fetch_orders(BTC, params={"trigger": True})] == [stop["id"]]
    await ex.cancel_all_orders(BTC, params={"trigger": True})
    assert await ex.fetch_open_orders(BTC, params={"trigger": True}) == []
    subs = await paper.client("master").sapiGetSubAccountList()
    assert {s["email"] for s in subs["subAccounts"]} == {"lead@paper.local", "alice@paper.local", "bob@paper.local"}

"""Binance spot JSON shapes for the paper exchange's spot state (as the captured real answers have them).

Quantities and prices go out with 8 decimals, ids and times as integers, as Binance spot sends them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bot.paper.markets import SpotMarketSpec
from bot.paper.state import Account, SpotOrder, SpotTrade
from bot.paper.wire import fmt

Json = dict[str, Any]


def d8(value: Decimal) -> str:
    return fmt(value, 8)


def exchange_info(markets: list[SpotMarketSpec], now_ms: int, weight: int, orders_10s: int, orders_day: int) -> Json:
    return {
        "timezone": "UTC",
        "serverTime": now_ms,
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": weight},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": orders_10s},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": orders_day},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
        ],
        "exchangeFilters": [],
        "symbols": [symbol_info(spec) for spec in markets],
    }


def symbol_info(spec: SpotMarketSpec) -> Json:
    return {
        "symbol": spec.symbol,
        "status": "TRADING",
        "baseAsset": spec.base,
        "baseAssetPrecision": 8,
        "quoteAsset": spec.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": d8(spec.min_price),
                "maxPrice": d8(spec.max_price),
                "tickSize": d8(spec.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": d8(spec.min_qty),
                "maxQty": d8(spec.max_qty),
                "stepSize": d8(spec.step_size),
            },
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": "0.00000000",
                "maxQty": d8(spec.market_max_qty),
                "stepSize": "0.00000000",
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": d8(spec.min_notional),
                "applyMinToMarket": True,
                "maxNotional": d8(spec.max_notional),
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        ],
        "permissions": ["SPOT"],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def _order_fields(o: SpotOrder) -> Json:
    return {
        "symbol": o.symbol,
        "orderId": o.order_id,
        "orderListId": -1,
        "clientOrderId": o.client_id,
        "price": d8(o.price),
        "origQty": d8(o.qty),
        "executedQty": d8(o.executed),
        "cummulativeQuoteQty": d8(o.cum_quote),
        "status": o.status,
        "timeInForce": o.time_in_force,
        "type": o.type,
        "side": o.side,
    }


def new_order(o: SpotOrder, response_type: str) -> Json:
    """The answer to `POST /api/v3/order`: ACK, RESULT or FULL (the default for MARKET and LIMIT)."""
    ack = {"symbol": o.symbol, "orderId": o.order_id, "orderListId": -1, "clientOrderId": o.client_id}
    if response_type == "ACK":
        return {**ack, "transactTime": o.time_ms}
    result = {
        **_order_fields(o),
        "transactTime": o.time_ms,
        "origQuoteOrderQty": d8(o.quote_order_qty),
        "workingTime": o.time_ms if o.status != "EXPIRED" or o.executed else -1,
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }
    if response_type == "RESULT":
        return result
    fills = [
        {
            "price": d8(t.price),
            "qty": d8(t.qty),
            "commission": d8(t.commission),
            "commissionAsset": t.commission_asset,
            "tradeId": t.trade_id,
        }
        for t in o.fills
    ]
    return {**result, "fills": fills}


def order(o: SpotOrder) -> Json:
    """An order as `GET /api/v3/order`, `openOrders` and `allOrders` show it."""
    return {
        **_order_fields(o),
        "stopPrice": "0.00000000",
        "icebergQty": "0.00000000",
        "time": o.time_ms,
        "updateTime": o.update_ms,
        "isWorking": True,
        "workingTime": o.time_ms,
        "origQuoteOrderQty": d8(o.quote_order_qty),
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }


def cancelled(o: SpotOrder) -> Json:
    return {
        "symbol": o.symbol,
        "origClientOrderId": o.client_id,
        "orderId": o.order_id,
        "orderListId": -1,
        "clientOrderId": f"cancel{o.order_id}",
        "transactTime": o.update_ms,
        **{k: v for k, v in _order_fields(o).items() if k not in ("symbol", "orderId", "orderListId", "clientOrderId")},
        "origQuoteOrderQty": d8(o.quote_order_qty),
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }


def my_trade(t: SpotTrade) -> Json:
    return {
        "symbol": t.symbol,
        "id": t.trade_id,
        "orderId": t.order_id,
        "orderListId": -1,
        "price": d8(t.price),
        "qty": d8(t.qty),
        "quoteQty": d8(t.price * t.qty),
        "commission": d8(t.commission),
        "commissionAsset": t.commission_asset,
        "time": t.time_ms,
        "isBuyer": t.side == "BUY",
        "isMaker": t.maker,
        "isBestMatch": True,
    }


def account(acct: Account, rates: tuple[Decimal, Decimal], now_ms: int, omit_zero: bool) -> Json:
    maker, taker = rates
    balances = [
        {"asset": asset, "free": d8(b.free), "locked": d8(b.locked)}
        for asset, b in sorted(acct.spot.balances.items())
        if not omit_zero or b.total
    ]
    return {
        "makerCommission": int(maker * 10000),
        "takerCommission": int(taker * 10000),
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {"maker": d8(maker), "taker": d8(taker), "buyer": d8(Decimal(0)), "seller": d8(Decimal(0))},
        "canTrade": acct.key_enabled,
        "canWithdraw": True,
        "canDeposit": True,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": acct.spot.update_ms or now_ms,
        "accountType": "SPOT",
        "balances": balances,
        "permissions": ["SPOT"],
        "uid": abs(hash(acct.name)) % 10**9,
    }


def execution_report(o: SpotOrder, execution: str, trade: SpotTrade | None, now_ms: int) -> Json:
    """The spot user data stream's `executionReport`."""
    return {
        "e": "executionReport",
        "E": now_ms,
        "s": o.symbol,
        "c": o.client_id,
        "S": o.side,
        "o": o.type,
        "f": o.time_in_force,
        "q": d8(o.qty),
        "p": d8(o.price),
        "P": "0.00000000",
        "F": "0.00000000",
        "g": -1,
        "C": "",
        "x": execution,
        "X": o.status,
        "r": "NONE",
        "i": o.order_id,
        "l": d8(trade.qty if trade else Decimal(0)),
        "z": d8(o.executed),
        "L": d8(trade.price if trade else Decimal(0)),
        "n": d8(trade.commission) if trade else "0",
        "N": trade.commission_asset if trade else None,
        "T": trade.time_ms if trade else o.update_ms,
        "t": trade.trade_id if trade else -1,
        "v": 0,
        "I": o.order_id,
        "w": o.is_open,
        "m": trade.maker if trade else False,
        "M": False,
        "O": o.time_ms,
        "Z": d8(o.cum_quote),
        "Y": d8(trade.price * trade.qty if trade else Decimal(0)),
        "Q": d8(o.quote_order_qty),
        "W": o.time_ms,
        "V": "EXPIRE_MAKER",
    }


def account_position(acct: Account, assets: list[str], now_ms: int) -> Json:
    """`outboundAccountPosition`: the balances an event changed."""
    rows = [{"a": a, "f": d8(acct.spot.balance(a).free), "l": d8(acct.spot.balance(a).locked)} for a in assets]
    return {"e": "outboundAccountPosition", "E": now_ms, "u": acct.spot.update_ms or now_ms, "B": rows}


def balance_update(asset: str, delta: Decimal, now_ms: int) -> Json:
    """`balanceUpdate`: a deposit, withdrawal or transfer."""
    return {"e": "balanceUpdate", "E": now_ms, "a": asset, "d": d8(delta), "T": now_ms}

"""Binance USDⓈ-M JSON shapes of the market side: exchange info, leverage brackets, tickers, mark prices; and
the number formats every shape uses (Decimals out as strings, ids and times as integers, as Binance sends them).
The account side's shapes are in `account_wire.py`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bot.paper.ledger import Ledger
from bot.paper.markets import MarketSpec
from bot.paper.state import ZERO, q8

Json = dict[str, Any]


def fmt(value: Decimal, places: int | None = None) -> str:
    """A Decimal as Binance prints it: fixed point, never an exponent."""
    if places is not None:
        return f"{value.quantize(Decimal(1).scaleb(-places)):f}"
    return f"{value:f}"


def money(value: Decimal) -> str:
    return fmt(q8(value), 8)


def exchange_info(
    ledger: Ledger, now_ms: int, weight: int = 2400, orders_1m: int = 1200, orders_10s: int = 300
) -> Json:
    return {
        "timezone": "UTC",
        "serverTime": now_ms,
        "futuresType": "U_MARGINED",
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": weight},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": orders_1m},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": orders_10s},
        ],
        "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": [symbol_info(spec) for spec in ledger.markets.values()],
    }


def symbol_info(spec: MarketSpec) -> Json:
    return {
        "symbol": spec.symbol,
        "pair": spec.symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,
        "onboardDate": spec.onboard_ms,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": spec.base,
        "quoteAsset": "USDT",
        "marginAsset": "USDT",
        "pricePrecision": spec.price_precision,
        "quantityPrecision": spec.quantity_precision,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": ["PoW"] if spec.base == "BTC" else ["Layer-1"],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": fmt(spec.min_price),
                "maxPrice": fmt(spec.max_price),
                "tickSize": fmt(spec.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": fmt(spec.min_qty),
                "maxQty": fmt(spec.max_qty),
                "stepSize": fmt(spec.step_size),
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": fmt(spec.min_qty),
                "maxQty": fmt(spec.market_max_qty),
                "stepSize": fmt(spec.step_size),
            },
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {"filterType": "MIN_NOTIONAL", "notional": fmt(spec.min_notional)},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": "1.0500",
                "multiplierDown": "0.9500",
                "multiplierDecimal": "4",
            },
        ],
        "orderTypes": [
            "LIMIT",
            "MARKET",
            "STOP",
            "STOP_MARKET",
            "TAKE_PROFIT",
            "TAKE_PROFIT_MARKET",
            "TRAILING_STOP_MARKET",
        ],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
    }


def leverage_brackets(spec: MarketSpec) -> Json:
    return {
        "symbol": spec.symbol,
        "brackets": [
            {
                "bracket": b.number,
                "initialLeverage": b.initial_leverage,
                "notionalCap": int(b.cap),
                "notionalFloor": int(b.floor),
                "maintMarginRatio": float(b.mmr),
                "cum": float(b.cum),
            }
            for b in spec.brackets
        ],
    }


def ticker_24hr(ledger: Ledger, symbol: str, now_ms: int) -> Json:
    state = ledger.prices[symbol]
    spec = ledger.markets[symbol]
    change = state.last - state.open
    weighted = state.quote_volume / state.volume if state.volume else state.last
    return {
        "symbol": symbol,
        "priceChange": fmt(change, spec.price_precision),
        "priceChangePercent": fmt(change / state.open * 100 if state.open else ZERO, 3),
        "weightedAvgPrice": fmt(weighted, spec.price_precision),
        "lastPrice": fmt(state.last, spec.price_precision),
        "lastQty": fmt(state.last_qty, spec.quantity_precision),
        "openPrice": fmt(state.open, spec.price_precision),
        "highPrice": fmt(state.high, spec.price_precision),
        "lowPrice": fmt(state.low, spec.price_precision),
        "volume": fmt(state.volume, spec.quantity_precision),
        "quoteVolume": fmt(state.quote_volume, 2),
        "openTime": state.open_ms,
        "closeTime": now_ms,
        "firstId": 1,
        "lastId": state.count,
        "count": state.count,
    }


def ticker_price(ledger: Ledger, symbol: str, now_ms: int) -> Json:
    spec = ledger.markets[symbol]
    return {"symbol": symbol, "price": fmt(ledger.prices[symbol].last, spec.price_precision), "time": now_ms}


def premium_index(ledger: Ledger, symbol: str, now_ms: int) -> Json:
    state = ledger.prices[symbol]
    return {
        "symbol": symbol,
        "markPrice": money(state.mark),
        "indexPrice": money(state.mark),
        "estimatedSettlePrice": money(state.mark),
        "lastFundingRate": fmt(state.funding_rate, 8),
        "interestRate": "0.00010000",
        "nextFundingTime": ledger.next_funding_ms(now_ms),
        "time": now_ms,
    }

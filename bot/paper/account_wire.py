"""Binance USDⓈ-M JSON shapes of the account side: orders, algo orders, trades, income, positions, account and
balances, transfers, and the user data stream's events (number formats from `wire.py`)."""

from __future__ import annotations

from bot.paper.accounts import Figures, Transfer, max_notional
from bot.paper.ledger import Ledger
from bot.paper.state import ZERO, Account, AlgoOrder, Income, Order, Position, Trade
from bot.paper.wire import Json, fmt, money


def order(o: Order) -> Json:
    return {
        "orderId": o.order_id,
        "symbol": o.symbol,
        "status": o.status,
        "clientOrderId": o.client_id,
        "price": fmt(o.price),
        "avgPrice": fmt(o.avg_price) if o.executed else "0.00",
        "origQty": fmt(o.qty),
        "executedQty": fmt(o.executed),
        "cumQty": fmt(o.executed),
        "cumQuote": fmt(o.cum_quote),
        "timeInForce": o.time_in_force,
        "type": o.type,
        "reduceOnly": o.reduce_only,
        "closePosition": o.close_position,
        "side": o.side,
        "positionSide": "BOTH",
        "stopPrice": fmt(o.stop_price),
        "workingType": o.working_type,
        "priceProtect": False,
        "origType": o.orig_type,
        "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "goodTillDate": 0,
        "time": o.time_ms,
        "updateTime": o.update_ms,
    }


def algo_order(a: AlgoOrder) -> Json:
    return {
        "algoId": a.algo_id,
        "clientAlgoId": a.client_algo_id,
        "algoType": "CONDITIONAL",
        "orderType": a.order_type,
        "symbol": a.symbol,
        "side": a.side,
        "positionSide": "BOTH",
        "timeInForce": "GTC",
        "quantity": fmt(a.qty),
        "algoStatus": a.status,
        "actualOrderId": "" if a.actual_order_id is None else str(a.actual_order_id),
        "triggerPrice": fmt(a.trigger_price),
        "price": "0",
        "icebergQuantity": None,
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "workingType": a.working_type,
        "priceMatch": "NONE",
        "closePosition": a.close_position,
        "priceProtect": False,
        "reduceOnly": a.reduce_only,
        "createTime": a.create_ms,
        "updateTime": a.update_ms,
        "triggerTime": a.trigger_ms,
        "goodTillDate": 0,
    }


def user_trade(t: Trade) -> Json:
    return {
        "symbol": t.symbol,
        "id": t.trade_id,
        "orderId": t.order_id,
        "side": t.side,
        "price": fmt(t.price),
        "qty": fmt(t.qty),
        "realizedPnl": money(t.realized_pnl),
        "marginAsset": "USDT",
        "quoteQty": fmt(t.quote_qty),
        "commission": money(t.commission),
        "commissionAsset": "USDT",
        "time": t.time_ms,
        "positionSide": "BOTH",
        "maker": t.maker,
        "buyer": t.side == "BUY",
    }


def income(i: Income) -> Json:
    return {
        "symbol": i.symbol,
        "incomeType": i.income_type,
        "income": money(i.amount),
        "asset": "USDT",
        "info": i.info,
        "time": i.time_ms,
        "tranId": i.tran_id,
        "tradeId": i.trade_id,
    }


def position_risk(ledger: Ledger, account: Account, pos: Position) -> Json:
    """One row of GET /fapi/v3/positionRisk."""
    state = ledger.prices[pos.symbol]
    spec = ledger.markets[pos.symbol]
    notional = pos.amount * state.mark
    bracket = spec.bracket_for(abs(notional))
    margin = abs(notional) / account.leverage_of(pos.symbol)
    open_margin = sum(
        (
            o.remaining * o.price / account.leverage_of(o.symbol)
            for o in account.open_orders.values()
            if o.symbol == pos.symbol and not o.reduce_only
        ),
        ZERO,
    )
    bid = sum(
        (o.remaining * o.price for o in account.open_orders.values() if o.symbol == pos.symbol and o.side == "BUY"),
        ZERO,
    )
    ask = sum(
        (o.remaining * o.price for o in account.open_orders.values() if o.symbol == pos.symbol and o.side == "SELL"),
        ZERO,
    )
    fee = ledger.rates(account)[1]
    break_even = pos.entry_price * (1 + fee) if pos.amount > 0 else pos.entry_price * (1 - fee)
    return {
        "symbol": pos.symbol,
        "positionSide": "BOTH",
        "positionAmt": fmt(pos.amount),
        "entryPrice": fmt(pos.entry_price.normalize()) if pos.amount else "0.0",
        "breakEvenPrice": fmt(break_even.normalize()) if pos.amount else "0.0",
        "markPrice": money(state.mark),
        "unRealizedProfit": money(pos.amount * (state.mark - pos.entry_price)),
        "liquidationPrice": liquidation_price(ledger, account, pos),
        "isolatedMargin": "0",
        "notional": money(notional),
        "marginAsset": "USDT",
        "isolatedWallet": "0",
        "initialMargin": money(margin + open_margin),
        "maintMargin": money(abs(notional) * bracket.mmr - bracket.cum if pos.amount else ZERO),
        "positionInitialMargin": money(margin),
        "openOrderInitialMargin": money(open_margin),
        "adl": 2 if pos.amount else 0,
        "bidNotional": money(bid),
        "askNotional": money(ask),
        "updateTime": pos.update_ms,
    }


def liquidation_price(ledger: Ledger, account: Account, pos: Position) -> str:
    """Cross-margin liquidation price of one position, treating the others' margin as fixed."""
    if not pos.amount:
        return "0"
    figs = ledger.figures(account)
    state = ledger.prices[pos.symbol]
    bracket = ledger.markets[pos.symbol].bracket_for(abs(pos.amount) * state.mark)
    own_upnl = pos.amount * (state.mark - pos.entry_price)
    own_maint = abs(pos.amount) * state.mark * bracket.mmr - bracket.cum
    rest = figs.margin_balance - own_upnl - (figs.maint_margin - own_maint)
    size = abs(pos.amount)
    side = 1 if pos.amount > 0 else -1
    denom = size * bracket.mmr - side * size
    price = (rest + bracket.cum - side * size * pos.entry_price) / denom
    return money(max(ZERO, price))


def account(ledger: Ledger, acct: Account, now_ms: int, with_positions: bool, ordered: bool = False) -> Json:
    """GET /fapi/v2/account and /fapi/v3/account. Cross margin only, USDT the one asset. Positions: those held,
    and with `ordered` (v3) also the symbols with an open order, as Binance's v3 lists them."""
    figs = ledger.figures(acct)
    body: Json = {
        "feeTier": 0,
        "canTrade": True,
        "canDeposit": True,
        "canWithdraw": True,
        "tradeGroupId": -1,
        "updateTime": 0,
        "multiAssetsMargin": False,
        **_totals(figs),
        "assets": [_usdt_asset(figs, now_ms)],
        "positions": [],
    }
    if with_positions:
        with_orders = {o.symbol for o in acct.open_orders.values()} if ordered else set()
        body["positions"] = [
            {
                "symbol": p.symbol,
                "positionSide": "BOTH",
                "positionAmt": fmt(p.amount),
                "unrealizedProfit": money(p.amount * (ledger.prices[p.symbol].mark - p.entry_price)),
                "isolatedMargin": "0",
                "notional": money(p.amount * ledger.prices[p.symbol].mark),
                "isolatedWallet": "0",
                "initialMargin": money(abs(p.amount) * ledger.prices[p.symbol].mark / acct.leverage_of(p.symbol)),
                "maintMargin": "0",
                "updateTime": p.update_ms,
            }
            for p in (acct.position(s) for s in sorted({*acct.positions, *with_orders}))
            if p.amount or p.symbol in with_orders
        ]
    return body


def _totals(figs: Figures) -> Json:
    return {
        "totalInitialMargin": money(figs.initial_margin),
        "totalMaintMargin": money(figs.maint_margin),
        "totalWalletBalance": money(figs.wallet),
        "totalUnrealizedProfit": money(figs.unrealized),
        "totalMarginBalance": money(figs.margin_balance),
        "totalPositionInitialMargin": money(figs.position_margin),
        "totalOpenOrderInitialMargin": money(figs.order_margin),
        "totalCrossWalletBalance": money(figs.wallet),
        "totalCrossUnPnl": money(figs.unrealized),
        "availableBalance": money(figs.available),
        "maxWithdrawAmount": money(figs.max_withdraw),
    }


def _usdt_asset(figs: Figures, now_ms: int) -> Json:
    return {
        "asset": "USDT",
        "walletBalance": money(figs.wallet),
        "unrealizedProfit": money(figs.unrealized),
        "marginBalance": money(figs.margin_balance),
        "maintMargin": money(figs.maint_margin),
        "initialMargin": money(figs.initial_margin),
        "positionInitialMargin": money(figs.position_margin),
        "openOrderInitialMargin": money(figs.order_margin),
        "maxWithdrawAmount": money(figs.max_withdraw),
        "crossWalletBalance": money(figs.wallet),
        "crossUnPnl": money(figs.unrealized),
        "availableBalance": money(figs.available),
        "marginAvailable": True,
        "updateTime": now_ms,
    }


def symbol_config(ledger: Ledger, acct: Account, symbol: str) -> Json:
    spec = ledger.markets[symbol]
    lev = acct.leverage_of(symbol)
    return {
        "symbol": symbol,
        "marginType": acct.margin_type_of(symbol),
        "isAutoAddMargin": "false",
        "leverage": lev,
        "maxNotionalValue": fmt(max_notional(spec, lev)),
    }


def transfer(t: Transfer) -> Json:
    return {"tranId": t.tran_id, "clientTranId": t.client_tran_id}


def transfer_record(t: Transfer) -> Json:
    return {
        "tranId": t.tran_id,
        "clientTranId": t.client_tran_id,
        "fromEmail": t.from_email,
        "toEmail": t.to_email,
        "asset": t.asset,
        "amount": fmt(t.amount),
        "fromAccountType": t.account_type,
        "toAccountType": t.account_type,
        "status": "SUCCESS",
        "createTimeStamp": t.time_ms,
    }


# -- user data stream events ----------------------------------------------------------------------


def order_trade_update(o: Order, execution: str, trade: Trade | None, now_ms: int) -> Json:
    return {
        "e": "ORDER_TRADE_UPDATE",
        "E": now_ms,
        "T": now_ms,
        "o": {
            "s": o.symbol,
            "c": o.client_id,
            "S": o.side,
            "o": o.type,
            "f": o.time_in_force,
            "q": fmt(o.qty),
            "p": fmt(o.price),
            "ap": fmt(o.avg_price),
            "sp": fmt(o.stop_price),
            "x": execution,
            "X": o.status,
            "i": o.order_id,
            "l": fmt(trade.qty) if trade else "0",
            "z": fmt(o.executed),
            "L": fmt(trade.price) if trade else "0",
            "N": "USDT",
            "n": money(trade.commission) if trade else "0",
            "T": o.update_ms,
            "t": trade.trade_id if trade else 0,
            "b": "0",
            "a": "0",
            "m": trade.maker if trade else False,
            "R": o.reduce_only,
            "wt": o.working_type,
            "ot": o.orig_type,
            "ps": "BOTH",
            "cp": o.close_position,
            "rp": money(trade.realized_pnl) if trade else "0",
            "pP": False,
            "si": 0,
            "ss": 0,
            "V": "EXPIRE_MAKER",
            "pm": "NONE",
            "gtd": 0,
        },
    }


def account_update(ledger: Ledger, acct: Account, reason: str, symbols: list[str], now_ms: int) -> Json:
    figs = ledger.figures(acct)
    positions = []
    for symbol in symbols:
        pos = acct.position(symbol)
        positions.append(
            {
                "s": symbol,
                "pa": fmt(pos.amount),
                "ep": fmt(pos.entry_price.normalize()) if pos.amount else "0",
                "bep": fmt(pos.entry_price.normalize()) if pos.amount else "0",
                "cr": "0",
                "up": money(pos.amount * (ledger.prices[symbol].mark - pos.entry_price)),
                "mt": "cross" if acct.margin_type_of(symbol) == "CROSSED" else "isolated",
                "iw": "0",
                "ps": "BOTH",
            }
        )
    return {
        "e": "ACCOUNT_UPDATE",
        "E": now_ms,
        "T": now_ms,
        "a": {
            "m": reason,
            "B": [{"a": "USDT", "wb": money(figs.wallet), "cw": money(figs.wallet), "bc": "0"}],
            "P": positions,
        },
    }

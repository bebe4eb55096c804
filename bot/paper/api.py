"""The Binance USDⓈ-M REST surface (fapi, the sub-account sapi endpoints) over the ledger."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from bot.paper import account_wire, errors, wire
from bot.paper.accounts import OrderRequest
from bot.paper.auth import Call, Security, authenticate
from bot.paper.faults import QUEUE_KEY
from bot.paper.ledger import Ledger
from bot.paper.limits import LimitSettings
from bot.paper.marketstream import MarketStreams
from bot.paper.userstream import UserStreams

UNLIMITED = 1_000_000


Handler = Callable[[Call], Any]


class ListenKeyStreams(Protocol):
    """Another user data stream served under `/ws/<listenKey>` (spot's, beside the futures one)."""

    def owns(self, key: str) -> bool: ...

    async def handle_listen_key(self, request: web.Request, key: str) -> web.StreamResponse: ...


class BinanceApi:
    """Routes, authentication and the JSON answers of the Binance futures API."""

    def __init__(
        self, ledger: Ledger, streams: UserStreams, master_key: str | None, limits: LimitSettings | None = None
    ) -> None:
        self.ledger = ledger
        self.limits = limits or LimitSettings()  # what exchangeInfo advertises (the server enforces them)
        self.streams = streams
        self.master_key = master_key
        self.routes: dict[tuple[str, str], tuple[Security, Handler]] = {}
        self._register()

    def add_to(self, app: web.Application, market: MarketStreams, spot: ListenKeyStreams | None = None) -> None:
        for method, path in self.routes:
            app.router.add_route(method, path, self._endpoint)
        app.router.add_get("/private/ws", self.streams.handle_ws)

        async def ws_by_name(request: web.Request) -> web.StreamResponse:
            """`/ws/<listenKey>` is a user data stream (futures' or spot's), `/ws/<symbol>@markPrice@1s` a market
            stream."""
            name = request.match_info["name"]
            if market.is_market_stream(name):
                return await market.handle(request, [name], combined=False)
            if spot is not None and spot.owns(name):
                return await spot.handle_listen_key(request, name)
            return await self.streams.handle_ws(request)

        async def subscribe_only(request: web.Request) -> web.StreamResponse:
            name = request.match_info.get("name", "")
            return await market.handle(request, [name] if market.is_market_stream(name) else [], combined=False)

        async def combined(request: web.Request) -> web.StreamResponse:
            names = [n for n in request.query.get("streams", "").split("/") if n]
            return await market.handle(request, names, combined=True)

        app.router.add_get("/ws/{name}", ws_by_name)
        app.router.add_get("/ws", subscribe_only)
        app.router.add_get("/market/ws", subscribe_only)
        app.router.add_get("/market/ws/{name}", subscribe_only)
        app.router.add_get("/stream", combined)
        app.router.add_get("/market/stream", combined)

    # -- request plumbing --------------------------------------------------------------------------

    async def _endpoint(self, request: web.Request) -> web.Response:
        try:
            security, handler = self.routes[(request.method, request.path)]
            call = await authenticate(request, security, self.ledger, self.master_key)
            call.queue_s = request.get(QUEUE_KEY)
            result = handler(call)
            if isinstance(result, Awaitable):
                result = await result
            return web.Response(text=json.dumps(result), content_type="application/json")
        except errors.BinanceError as exc:
            return web.Response(status=exc.status, text=json.dumps(exc.body()), content_type="application/json")

    def _register(self) -> None:
        public, signed = Security.NONE, Security.SIGNED
        table: list[tuple[str, str, Security, Handler]] = [
            ("GET", "/fapi/v1/ping", public, lambda c: {}),
            ("GET", "/fapi/v1/time", public, lambda c: {"serverTime": self.ledger.clock_ms()}),
            ("GET", "/fapi/v1/exchangeInfo", public, self.exchange_info),
            ("GET", "/fapi/v1/ticker/24hr", public, self.ticker_24hr),
            ("GET", "/fapi/v1/ticker/price", public, self.ticker_price),
            ("GET", "/fapi/v2/ticker/price", public, self.ticker_price),
            ("GET", "/fapi/v1/ticker/bookTicker", public, self.book_ticker),
            ("GET", "/fapi/v1/premiumIndex", public, self.premium_index),
            ("GET", "/fapi/v2/account", signed, lambda c: self.account(c, ordered=False)),
            ("GET", "/fapi/v3/account", signed, lambda c: self.account(c, ordered=True)),
            ("GET", "/fapi/v2/balance", signed, self.balance),
            ("GET", "/fapi/v3/balance", signed, self.balance),
            ("GET", "/fapi/v2/positionRisk", signed, lambda c: self.position_risk(c, every_symbol=True)),
            ("GET", "/fapi/v3/positionRisk", signed, lambda c: self.position_risk(c, every_symbol=False)),
            ("GET", "/fapi/v1/leverageBracket", signed, self.leverage_bracket),
            ("POST", "/fapi/v1/leverage", signed, self.set_leverage),
            ("POST", "/fapi/v1/marginType", signed, self.set_margin_type),
            ("POST", "/fapi/v1/positionSide/dual", signed, self.set_dual_side),
            ("GET", "/fapi/v1/positionSide/dual", signed, lambda c: {"dualSidePosition": c.me.dual_side}),
            ("GET", "/fapi/v1/symbolConfig", signed, self.symbol_config),
            ("GET", "/fapi/v1/commissionRate", signed, self.commission_rate),
            ("POST", "/fapi/v1/order", signed, self.new_order),
            ("GET", "/fapi/v1/order", signed, self.query_order),
            ("DELETE", "/fapi/v1/order", signed, self.cancel_order),
            ("GET", "/fapi/v1/openOrder", signed, self.query_open_order),
            ("GET", "/fapi/v1/openOrders", signed, self.open_orders),
            ("GET", "/fapi/v1/allOrders", signed, self.all_orders),
            ("DELETE", "/fapi/v1/allOpenOrders", signed, self.cancel_all),
            ("POST", "/fapi/v1/algoOrder", signed, self.new_algo),
            ("GET", "/fapi/v1/algoOrder", signed, self.query_algo),
            ("DELETE", "/fapi/v1/algoOrder", signed, self.cancel_algo),
            ("GET", "/fapi/v1/openAlgoOrders", signed, self.open_algos),
            ("GET", "/fapi/v1/allAlgoOrders", signed, self.all_algos),
            ("DELETE", "/fapi/v1/algoOpenOrders", signed, self.cancel_all_algos),
            ("GET", "/fapi/v1/userTrades", signed, self.user_trades),
            ("GET", "/fapi/v1/income", signed, self.income),
            ("POST", "/fapi/v1/listenKey", Security.API_KEY, lambda c: {"listenKey": self.streams.create_key(c.me)}),
            (
                "PUT",
                "/fapi/v1/listenKey",
                Security.API_KEY,
                lambda c: {"listenKey": self.streams.keep_alive(c.me, c.get("listenKey"))},
            ),
            ("DELETE", "/fapi/v1/listenKey", Security.API_KEY, self.close_listen_key),
            ("POST", "/sapi/v1/sub-account/universalTransfer", Security.MASTER, self.universal_transfer),
            ("GET", "/sapi/v1/sub-account/universalTransfer", Security.MASTER, self.transfer_history),
            ("GET", "/sapi/v1/sub-account/list", Security.MASTER, self.sub_accounts),
        ]
        for method, path, security, handler in table:
            self.routes[(method, path)] = (security, handler)

    # -- market data -------------------------------------------------------------------------------

    def _symbols(self, call: Call) -> list[str]:
        symbol = call.get("symbol")
        return [self.ledger.market(symbol).symbol] if symbol else list(self.ledger.markets)

    def exchange_info(self, call: Call) -> Any:
        """Advertises the limits it enforces; with limits off, a limit no client reaches (1,000,000)."""
        limits = self.limits
        if not limits.enabled:
            return wire.exchange_info(self.ledger, self.ledger.clock_ms(), UNLIMITED, UNLIMITED, UNLIMITED)
        return wire.exchange_info(
            self.ledger,
            self.ledger.clock_ms(),
            limits.request_weight_per_minute,
            limits.orders_per_minute,
            limits.orders_per_10s,
        )

    def _one_or_all(self, call: Call, render: Callable[[str, int], dict[str, Any]]) -> Any:
        now = self.ledger.clock_ms()
        rows = [render(s, now) for s in self._symbols(call)]
        return rows[0] if call.get("symbol") else rows

    def ticker_24hr(self, call: Call) -> Any:
        return self._one_or_all(call, lambda s, now: wire.ticker_24hr(self.ledger, s, now))

    def ticker_price(self, call: Call) -> Any:
        return self._one_or_all(call, lambda s, now: wire.ticker_price(self.ledger, s, now))

    def premium_index(self, call: Call) -> Any:
        return self._one_or_all(call, lambda s, now: wire.premium_index(self.ledger, s, now))

    def book_ticker(self, call: Call) -> Any:
        def render(symbol: str, now: int) -> dict[str, Any]:
            spec, last = self.ledger.markets[symbol], self.ledger.prices[symbol].last
            return {
                "symbol": symbol,
                "bidPrice": wire.fmt(last - spec.tick_size),
                "bidQty": "10",
                "askPrice": wire.fmt(last),
                "askQty": "10",
                "time": now,
                "lastUpdateId": now,
            }

        return self._one_or_all(call, render)

    # -- account -----------------------------------------------------------------------------------

    def account(self, call: Call, ordered: bool) -> Any:
        return account_wire.account(self.ledger, call.me, self.ledger.clock_ms(), True, ordered)

    def balance(self, call: Call) -> Any:
        figs = self.ledger.figures(call.me)
        return [
            {
                "accountAlias": "SgsR",
                "asset": "USDT",
                "balance": wire.money(figs.wallet),
                "crossWalletBalance": wire.money(figs.wallet),
                "crossUnPnl": wire.money(figs.unrealized),
                "availableBalance": wire.money(figs.available),
                "maxWithdrawAmount": wire.money(figs.max_withdraw),
                "marginAvailable": True,
                "updateTime": self.ledger.clock_ms(),
            }
        ]

    def position_risk(self, call: Call, every_symbol: bool) -> Any:
        me = call.me
        rows = []
        for symbol in self._symbols(call):
            pos = me.positions.get(symbol)
            has_orders = any(o.symbol == symbol for o in me.open_orders.values())
            if every_symbol or (pos is not None and pos.amount) or has_orders:
                row = account_wire.position_risk(self.ledger, me, me.position(symbol))
                if every_symbol:
                    config = account_wire.symbol_config(self.ledger, me, symbol)
                    row |= {
                        "leverage": str(config["leverage"]),
                        "maxNotionalValue": config["maxNotionalValue"],
                        "marginType": "cross" if config["marginType"] == "CROSSED" else "isolated",
                        "isAutoAddMargin": "false",
                    }
                rows.append(row)
        return rows

    def leverage_bracket(self, call: Call) -> Any:
        rows = [wire.leverage_brackets(self.ledger.markets[s]) for s in self._symbols(call)]
        return rows[0] if call.get("symbol") else rows

    def set_leverage(self, call: Call) -> Any:
        symbol = call.need("symbol")
        leverage, cap = self.ledger.set_leverage(call.me, symbol, call.get("leverage"))
        return {"leverage": leverage, "maxNotionalValue": wire.fmt(cap), "symbol": symbol}

    def set_margin_type(self, call: Call) -> Any:
        self.ledger.set_margin_type(call.me, call.need("symbol"), call.get("marginType"))
        return {"code": 200, "msg": "success"}

    def set_dual_side(self, call: Call) -> Any:
        self.ledger.set_dual_side(call.me, call.flag("dualSidePosition"))
        return {"code": 200, "msg": "success"}

    def symbol_config(self, call: Call) -> Any:
        return [account_wire.symbol_config(self.ledger, call.me, s) for s in self._symbols(call)]

    def commission_rate(self, call: Call) -> Any:
        symbol = self.ledger.market(call.need("symbol")).symbol
        maker, taker = self.ledger.rates(call.me)
        return {"symbol": symbol, "makerCommissionRate": wire.fmt(maker), "takerCommissionRate": wire.fmt(taker)}

    # -- orders ------------------------------------------------------------------------------------

    def _order_request(self, call: Call) -> OrderRequest:
        return OrderRequest(
            symbol=call.need("symbol"),
            side=call.need("side"),
            type=call.get("type") or call.need("orderType"),
            quantity=call.decimal("quantity"),
            price=call.decimal("price"),
            time_in_force=call.get("timeInForce"),
            reduce_only=call.flag("reduceOnly"),
            close_position=call.flag("closePosition"),
            client_id=call.get("newClientOrderId") or call.get("clientAlgoId"),
            trigger_price=call.decimal("triggerPrice") or call.decimal("stopPrice"),
            working_type=call.get("workingType") or "CONTRACT_PRICE",
            position_side=call.get("positionSide") or "BOTH",
        )

    def new_order(self, call: Call) -> Any:
        if call.queue_s is None:
            return account_wire.order(self.ledger.place_order(call.me, self._order_request(call)))
        order = self.ledger.place_order(call.me, self._order_request(call), queued=True)
        loop = asyncio.get_running_loop()
        loop.call_later(call.queue_s, self.ledger.execute_queued, call.me, order)
        return account_wire.order(order)

    def query_order(self, call: Call) -> Any:
        order = self.ledger.find_order(call.me, call.need("symbol"), call.get("orderId"), call.get("origClientOrderId"))
        return account_wire.order(order)

    def query_open_order(self, call: Call) -> Any:
        order = self.ledger.find_order(call.me, call.need("symbol"), call.get("orderId"), call.get("origClientOrderId"))
        if not order.is_open:
            raise errors.order_does_not_exist()
        return account_wire.order(order)

    def cancel_order(self, call: Call) -> Any:
        order = self.ledger.cancel_order(
            call.me, call.need("symbol"), call.get("orderId"), call.get("origClientOrderId")
        )
        return account_wire.order(order)

    def open_orders(self, call: Call) -> Any:
        symbols = set(self._symbols(call))
        return [account_wire.order(o) for o in call.me.open_orders.values() if o.symbol in symbols]

    def all_orders(self, call: Call) -> Any:
        symbol = self.ledger.market(call.need("symbol")).symbol
        rows = [o for o in call.me.orders.values() if o.symbol == symbol and self._in_window(call, o.time_ms)]
        return [account_wire.order(o) for o in rows[-min(call.int("limit", 500), 1000) :]]

    def cancel_all(self, call: Call) -> Any:
        self.ledger.cancel_all(call.me, call.need("symbol"))
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def new_algo(self, call: Call) -> Any:
        if call.get("algoType") != "CONDITIONAL":
            raise errors.mandatory("algoType")
        return account_wire.algo_order(self.ledger.place_algo(call.me, self._order_request(call)))

    def query_algo(self, call: Call) -> Any:
        return account_wire.algo_order(self.ledger.find_algo(call.me, call.get("algoId"), call.get("clientAlgoId")))

    def cancel_algo(self, call: Call) -> Any:
        algo = self.ledger.find_algo(call.me, call.get("algoId"), call.get("clientAlgoId"))
        self.ledger.cancel_algo(call.me, algo)
        return {"algoId": algo.algo_id, "clientAlgoId": algo.client_algo_id, "code": "200", "msg": "success"}

    def open_algos(self, call: Call) -> Any:
        symbols = set(self._symbols(call))
        return [account_wire.algo_order(a) for a in call.me.algo_orders.values() if a.is_open and a.symbol in symbols]

    def all_algos(self, call: Call) -> Any:
        symbols = set(self._symbols(call))
        return [account_wire.algo_order(a) for a in call.me.algo_orders.values() if a.symbol in symbols]

    def cancel_all_algos(self, call: Call) -> Any:
        symbol = self.ledger.market(call.need("symbol")).symbol
        for algo in [a for a in call.me.algo_orders.values() if a.is_open and a.symbol == symbol]:
            self.ledger.cancel_algo(call.me, algo)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    # -- history -----------------------------------------------------------------------------------

    def _in_window(self, call: Call, time_ms: int) -> bool:
        start, end = call.int("startTime", 0), call.int("endTime", 2**62)
        return start <= time_ms <= end

    def user_trades(self, call: Call) -> Any:
        symbol = self.ledger.market(call.need("symbol")).symbol
        from_id = call.int("fromId", 0)
        rows = [
            t
            for t in call.me.trades
            if t.symbol == symbol and t.trade_id >= from_id and self._in_window(call, t.time_ms)
        ]
        limit = min(call.int("limit", 500), 1000)
        return [account_wire.user_trade(t) for t in (rows[:limit] if from_id else rows[-limit:])]

    def income(self, call: Call) -> Any:
        symbol, kind = call.get("symbol"), call.get("incomeType")
        rows = [
            i
            for i in call.me.income
            if (symbol is None or i.symbol == symbol)
            and (kind is None or i.income_type == kind)
            and self._in_window(call, i.time_ms)
        ]
        limit = min(call.int("limit", 100), 1000)
        return [account_wire.income(i) for i in (rows[:limit] if call.get("startTime") else rows[-limit:])]

    def close_listen_key(self, call: Call) -> Any:
        self.streams.close_key(call.me, call.get("listenKey"))
        return {}

    # -- sub-accounts ------------------------------------------------------------------------------

    def universal_transfer(self, call: Call) -> Any:
        master = call.me
        for side in ("fromAccountType", "toAccountType"):
            if call.need(side) != "USDT_FUTURE":
                raise errors.BinanceError(
                    -1100,
                    f"Illegal characters found in parameter '{side}'; "
                    "the paper exchange moves USDT_FUTURE wallets only.",
                )
        amount = call.decimal("amount")
        if amount is None:
            raise errors.mandatory("amount")
        transfer = self.ledger.universal_transfer(
            call.get("fromEmail") or master.email,
            call.get("toEmail") or master.email,
            amount,
            call.need("asset"),
            call.get("clientTranId"),
        )
        return account_wire.transfer(transfer)

    def transfer_history(self, call: Call) -> Any:
        wanted = call.get("clientTranId")
        rows = [t for t in self.ledger.transfers.values() if wanted is None or t.client_tran_id == wanted]
        return {"result": [account_wire.transfer_record(t) for t in rows], "totalCount": len(rows)}

    def sub_accounts(self, call: Call) -> Any:
        subs = [a for a in self.ledger.accounts.values() if a is not call.me]
        return {
            "subAccounts": [
                {
                    "email": a.email,
                    "isFreeze": not a.key_enabled,
                    "createTime": 1689744671462,
                    "isManagedSubAccount": False,
                    "isAssetManagementSubAccount": False,
                }
                for a in subs
            ]
        }

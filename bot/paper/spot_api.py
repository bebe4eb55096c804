"""The Binance spot REST surface (`/api/v3`) and the spot user data stream, over the spot engine.

The user data stream arrives as ccxt.pro consumes it today: through the websocket API (`/ws-api/v3`,
`userDataStream.subscribe.signature`, events wrapped as `{"subscriptionId", "event"}`), and through listen keys
(`/api/v3/userDataStream`, then `/ws/<listenKey>`) for clients that still use them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from aiohttp import WSMsgType, web

from bot.paper import account_wire, errors, spot_wire
from bot.paper.api import BinanceApi
from bot.paper.auth import Call, Security
from bot.paper.limits import Limits
from bot.paper.spot import SpotLedger, SpotOrderRequest
from bot.paper.state import Account, SpotOrder, SpotTrade
from bot.paper.userstream import pump

LISTEN_KEY_VALIDITY_MS = 60 * 60 * 1000


@dataclass(slots=True, eq=False)
class _Subscriber:
    account: str
    wrap_id: int | None  # the websocket API's subscriptionId; None on a listen-key stream
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)


class SpotUserStreams:
    """Spot user data: `executionReport`, `outboundAccountPosition`, `balanceUpdate` to every subscriber."""

    def __init__(self, clock_ms: Callable[[], int]) -> None:
        self.clock_ms = clock_ms
        self._subscribers: dict[str, set[_Subscriber]] = {}
        self._keys: dict[str, tuple[str, int]] = {}  # listen key -> (account, expiry ms)
        self._ids = 0

    # -- the spot ledger's listener ----------------------------------------------------------------

    def spot_order_update(self, account: Account, order: SpotOrder, execution: str, trade: SpotTrade | None) -> None:
        self._publish(account.name, spot_wire.execution_report(order, execution, trade, self.clock_ms()))

    def spot_balances(self, account: Account, assets: Iterable[str]) -> None:
        self._publish(account.name, spot_wire.account_position(account, sorted(set(assets)), self.clock_ms()))

    def spot_balance_delta(self, account: Account, asset: str, delta: Decimal) -> None:
        self._publish(account.name, spot_wire.balance_update(asset, delta, self.clock_ms()))

    def _publish(self, account: str, event: dict[str, Any]) -> None:
        for sub in self._subscribers.get(account, ()):
            payload = event if sub.wrap_id is None else {"subscriptionId": sub.wrap_id, "event": event}
            sub.queue.put_nowait(json.dumps(payload))

    def connections(self, account: str) -> int:
        return len(self._subscribers.get(account, ()))

    def drop_connections(self, account: str | None = None) -> int:
        dropped = 0
        for name, subs in self._subscribers.items():
            if account is None or name == account:
                for sub in subs:
                    sub.queue.put_nowait(None)
                    dropped += 1
        return dropped

    # -- listen keys -------------------------------------------------------------------------------

    def create_key(self, account: Account) -> str:
        now = self.clock_ms()
        for key, (name, expires) in self._keys.items():
            if name == account.name and expires > now:
                self._keys[key] = (name, now + LISTEN_KEY_VALIDITY_MS)
                return key
        key = secrets.token_hex(30)
        self._keys[key] = (account.name, now + LISTEN_KEY_VALIDITY_MS)
        return key

    def keep_alive(self, account: Account, key: str | None) -> dict[str, Any]:
        found = self._keys.get(key or "")
        if found is None or found[0] != account.name or found[1] <= self.clock_ms():
            raise errors.listen_key_missing()
        self._keys[key or ""] = (account.name, self.clock_ms() + LISTEN_KEY_VALIDITY_MS)
        return {}

    def close_key(self, account: Account, key: str | None) -> dict[str, Any]:
        self.keep_alive(account, key)
        self._keys.pop(key or "", None)
        self.drop_connections(account.name)
        return {}

    def owns(self, key: str) -> bool:
        found = self._keys.get(key)
        return found is not None and found[1] > self.clock_ms()

    # -- websockets --------------------------------------------------------------------------------

    async def handle_listen_key(self, request: web.Request, key: str) -> web.StreamResponse:
        """`/ws/<listenKey>`: the classic stream, events unwrapped."""
        account = self._keys[key][0]
        ws = web.WebSocketResponse(heartbeat=None, autoping=True)
        await ws.prepare(request)
        sub = _Subscriber(account, None)
        await self._serve(ws, sub, lambda text: None)
        return ws

    async def handle_ws_api(
        self, request: web.Request, ledger_by_key: Callable[[str], Account | None]
    ) -> web.StreamResponse:
        """`/ws-api/v3`: requests in, answers and (after `userDataStream.subscribe.signature`) events out."""
        ws = web.WebSocketResponse(heartbeat=None, autoping=True)
        await ws.prepare(request)
        sub = _Subscriber("", None)

        def answer(text: str) -> None:
            try:
                message = json.loads(text)
                request_id = message.get("id")
                method = message.get("method")
                params = message.get("params") or {}
            except (ValueError, AttributeError):
                sub.queue.put_nowait(json.dumps({"id": None, "status": 400, "error": {"code": -1000, "msg": "Bad"}}))
                return
            try:
                result = self._ws_request(sub, str(method), params, ledger_by_key)
            except errors.BinanceError as exc:
                sub.queue.put_nowait(json.dumps({"id": request_id, "status": exc.status, "error": exc.body()}))
                return
            sub.queue.put_nowait(json.dumps({"id": request_id, "status": 200, "result": result}))

        await self._serve(ws, sub, answer)
        return ws

    def _ws_request(
        self, sub: _Subscriber, method: str, params: dict[str, Any], ledger_by_key: Callable[[str], Account | None]
    ) -> dict[str, Any]:
        if method == "ping":
            return {}
        if method == "time":
            return {"serverTime": self.clock_ms()}
        if method != "userDataStream.subscribe.signature":
            raise errors.BinanceError(-1100, f"Illegal characters found in parameter 'method'; unknown {method!r}.")
        account = ledger_by_key(str(params.get("apiKey", "")))
        if account is None:
            raise errors.invalid_api_key()
        signature = str(params.get("signature", ""))
        signed = urlencode(sorted((k, str(v)) for k, v in params.items() if k != "signature"))
        expected = hmac.new(account.api_secret.encode(), signed.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise errors.bad_signature()
        stamp = str(params.get("timestamp", ""))
        if not stamp.isdigit() or abs(self.clock_ms() - int(stamp)) > int(params.get("recvWindow", 5000)):
            raise errors.outside_recv_window()
        if sub.account:
            raise errors.BinanceError(-1210, "This connection already has a user data stream subscription.")
        sub.account = account.name
        sub.wrap_id = self._ids
        self._ids += 1
        self._subscribers.setdefault(account.name, set()).add(sub)
        return {"subscriptionId": sub.wrap_id}

    async def _serve(self, ws: web.WebSocketResponse, sub: _Subscriber, on_text: Callable[[str], None]) -> None:
        if sub.account:
            self._subscribers.setdefault(sub.account, set()).add(sub)
        writer = asyncio.create_task(pump(ws, sub.queue))
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
                if msg.type == WSMsgType.TEXT:
                    on_text(msg.data)
        finally:
            self._subscribers.get(sub.account, set()).discard(sub)
            sub.queue.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError):
                await writer


class SpotApi:
    """Binance spot's REST endpoints, registered beside the futures ones (same port, same accounts)."""

    def __init__(self, api: BinanceApi, spot: SpotLedger, streams: SpotUserStreams, limits: Limits) -> None:
        self.api = api
        self.spot = spot
        self.streams = streams
        self.limits = limits
        signed, public, key_only = Security.SIGNED, Security.NONE, Security.API_KEY
        clock = spot.ledger.clock_ms
        table: list[tuple[str, str, Security, Callable[[Call], Any]]] = [
            ("GET", "/api/v3/ping", public, lambda c: {}),
            ("GET", "/api/v3/time", public, lambda c: {"serverTime": clock()}),
            ("GET", "/api/v3/exchangeInfo", public, self.exchange_info),
            ("GET", "/api/v3/ticker/price", public, self.ticker_price),
            ("GET", "/api/v3/ticker/bookTicker", public, self.book_ticker),
            ("GET", "/api/v3/ticker/24hr", public, self.ticker_24hr),
            ("GET", "/api/v3/account", signed, self.account),
            ("POST", "/api/v3/order", signed, self.new_order),
            ("GET", "/api/v3/order", signed, self.query_order),
            ("DELETE", "/api/v3/order", signed, self.cancel_order),
            ("GET", "/api/v3/openOrders", signed, self.open_orders),
            ("DELETE", "/api/v3/openOrders", signed, self.cancel_open_orders),
            ("GET", "/api/v3/allOrders", signed, self.all_orders),
            ("GET", "/api/v3/myTrades", signed, self.my_trades),
            ("POST", "/api/v3/userDataStream", key_only, lambda c: {"listenKey": streams.create_key(c.me)}),
            ("PUT", "/api/v3/userDataStream", key_only, lambda c: streams.keep_alive(c.me, c.get("listenKey"))),
            ("DELETE", "/api/v3/userDataStream", key_only, lambda c: streams.close_key(c.me, c.get("listenKey"))),
        ]
        for method, path, security, handler in table:
            api.routes[(method, path)] = (security, handler)
        self._futures_transfer = api.routes[("POST", "/sapi/v1/sub-account/universalTransfer")][1]
        api.routes[("POST", "/sapi/v1/sub-account/universalTransfer")] = (Security.MASTER, self.universal_transfer)
        api.routes[("GET", "/sapi/v1/sub-account/universalTransfer")] = (Security.MASTER, self.transfer_history)

    # -- sub-account transfers ---------------------------------------------------------------------

    def universal_transfer(self, call: Call) -> Any:
        """`SPOT` → `SPOT` moves between spot wallets; `USDT_FUTURE` → `USDT_FUTURE` between futures wallets."""
        kinds = (call.need("fromAccountType"), call.need("toAccountType"))
        if kinds != ("SPOT", "SPOT"):
            return self._futures_transfer(call)
        amount = call.decimal("amount")
        if amount is None:
            raise errors.mandatory("amount")
        master = call.me
        transfer = self.spot.universal_transfer(
            call.get("fromEmail") or master.email,
            call.get("toEmail") or master.email,
            amount,
            call.need("asset"),
            call.get("clientTranId"),
        )
        return {"tranId": transfer.tran_id, "clientTranId": transfer.client_tran_id}

    def transfer_history(self, call: Call) -> Any:
        wanted = call.get("clientTranId")
        every = [*self.spot.ledger.transfers.values(), *self.spot.transfers.values()]
        rows = sorted((t for t in every if wanted is None or t.client_tran_id == wanted), key=lambda t: t.tran_id)
        return {"result": [account_wire.transfer_record(t) for t in rows], "totalCount": len(rows)}

    # -- market data -------------------------------------------------------------------------------

    def _symbols(self, call: Call) -> list[str]:
        symbol = call.get("symbol")
        if symbol:
            return [self.spot.market(symbol).symbol]
        listed = call.get("symbols")
        if listed:
            try:
                names = json.loads(listed)
            except ValueError:
                raise errors.illegal("symbols", "a JSON list") from None
            return [self.spot.market(str(n)).symbol for n in names]
        return list(self.spot.markets)

    def _one_or_all(self, call: Call, render: Callable[[str], dict[str, Any]]) -> Any:
        rows = [render(s) for s in self._symbols(call)]
        return rows[0] if call.get("symbol") else rows

    def exchange_info(self, call: Call) -> Any:
        limits = self.limits.settings
        specs = [self.spot.markets[s] for s in self._symbols(call)]
        if not limits.enabled:
            return spot_wire.exchange_info(specs, self.spot.ledger.clock_ms(), 1_000_000, 1_000_000, 1_000_000_000)
        spot = limits.spot
        return spot_wire.exchange_info(
            specs, self.spot.ledger.clock_ms(), spot.request_weight_per_minute, spot.orders_per_10s, spot.orders_per_day
        )

    def ticker_price(self, call: Call) -> Any:
        return self._one_or_all(call, lambda s: {"symbol": s, "price": spot_wire.d8(self.spot.last(s))})

    def book_ticker(self, call: Call) -> Any:
        def render(symbol: str) -> dict[str, Any]:
            last, tick = self.spot.last(symbol), self.spot.markets[symbol].tick_size
            return {
                "symbol": symbol,
                "bidPrice": spot_wire.d8(last - tick),
                "bidQty": "10.00000000",
                "askPrice": spot_wire.d8(last),
                "askQty": "10.00000000",
            }

        return self._one_or_all(call, render)

    def ticker_24hr(self, call: Call) -> Any:
        now = self.spot.ledger.clock_ms()

        def render(symbol: str) -> dict[str, Any]:
            state = self.spot.ledger.prices[symbol]
            tick = self.spot.markets[symbol].tick_size
            d8 = spot_wire.d8
            return {
                "symbol": symbol,
                "priceChange": d8(state.last - state.open),
                "priceChangePercent": f"{(state.last - state.open) / state.open * 100 if state.open else 0:.3f}",
                "weightedAvgPrice": d8(state.quote_volume / state.volume if state.volume else state.last),
                "prevClosePrice": d8(state.open),
                "lastPrice": d8(state.last),
                "lastQty": d8(state.last_qty),
                "bidPrice": d8(state.last - tick),
                "bidQty": "10.00000000",
                "askPrice": d8(state.last),
                "askQty": "10.00000000",
                "openPrice": d8(state.open),
                "highPrice": d8(state.high),
                "lowPrice": d8(state.low),
                "volume": d8(state.volume),
                "quoteVolume": d8(state.quote_volume),
                "openTime": state.open_ms,
                "closeTime": now,
                "firstId": 1,
                "lastId": state.count,
                "count": state.count,
            }

        return self._one_or_all(call, render)

    # -- account and orders ------------------------------------------------------------------------

    def account(self, call: Call) -> Any:
        rates = self.spot.rates(call.me)
        return spot_wire.account(call.me, rates, self.spot.ledger.clock_ms(), call.flag("omitZeroBalances"))

    def new_order(self, call: Call) -> Any:
        request = SpotOrderRequest(
            symbol=call.need("symbol"),
            side=call.need("side"),
            type=call.need("type"),
            quantity=call.decimal("quantity"),
            quote_order_qty=call.decimal("quoteOrderQty"),
            price=call.decimal("price"),
            time_in_force=call.get("timeInForce"),
            client_id=call.get("newClientOrderId"),
        )
        response_type = call.get("newOrderRespType") or "FULL"
        if response_type not in ("ACK", "RESULT", "FULL"):
            raise errors.illegal("newOrderRespType", "ACK, RESULT, FULL")
        return spot_wire.new_order(self.spot.place_order(call.me, request), response_type)

    def query_order(self, call: Call) -> Any:
        found = self.spot.find_order(call.me, call.need("symbol"), call.get("orderId"), call.get("origClientOrderId"))
        return spot_wire.order(found)

    def cancel_order(self, call: Call) -> Any:
        order = self.spot.cancel_order(call.me, call.need("symbol"), call.get("orderId"), call.get("origClientOrderId"))
        return spot_wire.cancelled(order)

    def open_orders(self, call: Call) -> Any:
        symbols = set(self._symbols(call))
        return [spot_wire.order(o) for o in call.me.spot.open_orders.values() if o.symbol in symbols]

    def cancel_open_orders(self, call: Call) -> Any:
        return [spot_wire.cancelled(o) for o in self.spot.cancel_all(call.me, call.need("symbol"))]

    def _in_window(self, call: Call, time_ms: int) -> bool:
        return call.int("startTime", 0) <= time_ms <= call.int("endTime", 2**62)

    def all_orders(self, call: Call) -> Any:
        symbol = self.spot.market(call.need("symbol")).symbol
        from_id = call.int("orderId", 0)
        rows = [
            o
            for o in call.me.spot.orders.values()
            if o.symbol == symbol and o.order_id >= from_id and self._in_window(call, o.time_ms)
        ]
        limit = min(call.int("limit", 500), 1000)
        return [spot_wire.order(o) for o in (rows[:limit] if from_id else rows[-limit:])]

    def my_trades(self, call: Call) -> Any:
        symbol = self.spot.market(call.need("symbol")).symbol
        from_id = call.int("fromId", 0)
        order_id = call.get("orderId")
        rows = [
            t
            for t in call.me.spot.trades
            if t.symbol == symbol
            and t.trade_id >= from_id
            and (order_id is None or str(t.order_id) == order_id)
            and self._in_window(call, t.time_ms)
        ]
        limit = min(call.int("limit", 500), 1000)
        return [spot_wire.my_trade(t) for t in (rows[:limit] if from_id else rows[-limit:])]

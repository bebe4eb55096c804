"""The control API under /_paper/: prices, random walk, account state, deposits, faults, stream drops.

Loopback only and unauthenticated: it is how tests, benchmarks and the demo steer the paper exchange.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import ValidationError

from bot.paper import account_wire, errors, spot_wire, wire
from bot.paper.faults import Fault
from bot.paper.limits import LimitSettings
from bot.paper.state import Account

if TYPE_CHECKING:
    from bot.paper.server import PaperExchange

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def _decimal(value: object, name: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise web.HTTPBadRequest(text=json.dumps({"error": f"{name} must be a decimal"})) from None
    if not number.is_finite():
        raise web.HTTPBadRequest(text=json.dumps({"error": f"{name} must be finite"}))
    return number


def _reply(data: Any) -> web.Response:
    return web.Response(text=json.dumps(data), content_type="application/json")


class ControlApi:
    def __init__(self, exchange: PaperExchange) -> None:
        self.x = exchange

    def add_to(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/_paper/health", self.health)
        r.add_get("/_paper/accounts", self.list_accounts)
        r.add_post("/_paper/accounts", self.create_account)
        r.add_get("/_paper/accounts/{name}", self.account_state)
        r.add_post("/_paper/accounts/{name}/deposit", self.deposit)
        r.add_post("/_paper/accounts/{name}/withdraw", self.withdraw)
        r.add_post("/_paper/accounts/{name}/key", self.key)
        r.add_post("/_paper/accounts/{name}/commission", self.commission)
        r.add_post("/_paper/accounts/{name}/spot/deposit", self.spot_deposit)
        r.add_post("/_paper/accounts/{name}/spot/withdraw", self.spot_withdraw)
        r.add_post("/_paper/accounts/{name}/spot/commission", self.spot_commission)
        r.add_get("/_paper/prices", self.get_prices)
        r.add_post("/_paper/prices", self.set_prices)
        r.add_post("/_paper/random-walk", self.random_walk)
        r.add_post("/_paper/funding", self.funding)
        r.add_get("/_paper/limits", self.get_limits)
        r.add_post("/_paper/limits", self.set_limits)
        r.add_delete("/_paper/limits", self.reset_limits)
        r.add_get("/_paper/faults", self.list_faults)
        r.add_post("/_paper/faults", self.add_fault)
        r.add_delete("/_paper/faults", self.clear_faults)
        r.add_post("/_paper/ws/drop", self.drop_ws)
        r.add_post("/_paper/listen-keys/expire", self.expire_keys)

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_paper/") and not _is_loopback(request.remote):
            raise web.HTTPForbidden(text="the paper exchange's control API answers loopback clients only")
        return await handler(request)

    async def health(self, request: web.Request) -> web.Response:
        return _reply({"status": "ok"})

    async def get_limits(self, request: web.Request) -> web.Response:
        """The limits in force and what each IP and account used: weight this minute, peak, per minute."""
        return _reply(self.x.limits.usage())

    async def set_limits(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        try:
            self.x.limits.settings = LimitSettings.model_validate({**self.x.limits.settings.model_dump(), **body})
            self.x.api.limits = self.x.limits.settings
        except ValidationError as exc:
            raise web.HTTPBadRequest(text=json.dumps({"error": f"bad limits: {exc}"})) from None
        return _reply(self.x.limits.usage())

    async def reset_limits(self, request: web.Request) -> web.Response:
        """Forgets every count, 429 back-off and ban."""
        self.x.limits.reset()
        return _reply(self.x.limits.usage())

    async def list_faults(self, request: web.Request) -> web.Response:
        return _reply({"faults": self.x.faults.listing()})

    def _account(self, request: web.Request) -> Account:
        account = self.x.ledger.accounts.get(request.match_info["name"])
        if account is None:
            raise web.HTTPNotFound(text=json.dumps({"error": "no such account"}))
        return account

    async def _body(self, request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        try:
            data = await request.json()
        except json.JSONDecodeError:
            raise web.HTTPBadRequest(text=json.dumps({"error": "body must be JSON"})) from None
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(text=json.dumps({"error": "body must be a JSON object"}))
        return data

    async def list_accounts(self, request: web.Request) -> web.Response:
        return _reply({"accounts": [{"name": a.name, "email": a.email} for a in self.x.ledger.accounts.values()]})

    async def create_account(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        try:
            self.x.add_account(body)
        except (KeyError, ValueError) as exc:
            raise web.HTTPBadRequest(text=json.dumps({"error": str(exc)})) from None
        return _reply({"name": body["name"]})

    async def account_state(self, request: web.Request) -> web.Response:
        account = self._account(request)
        ledger = self.x.ledger
        now = ledger.clock_ms()
        return _reply(
            {
                "name": account.name,
                "email": account.email,
                "key_enabled": account.key_enabled,
                "account": account_wire.account(ledger, account, now, with_positions=True),
                "positions": [
                    account_wire.position_risk(ledger, account, p) for p in account.positions.values() if p.amount
                ],
                "leverage": account.leverage,
                "orders": [account_wire.order(o) for o in account.orders.values()],
                "open_orders": [account_wire.order(o) for o in account.open_orders.values()],
                "algo_orders": [account_wire.algo_order(a) for a in account.algo_orders.values()],
                "trades": [account_wire.user_trade(t) for t in account.trades],
                "income": [account_wire.income(i) for i in account.income],
                "stream_connections": self.x.streams.connections(account.name),
                "spot": {
                    "account": spot_wire.account(account, self.x.spot.rates(account), now, omit_zero=False),
                    "orders": [spot_wire.order(o) for o in account.spot.orders.values()],
                    "open_orders": [spot_wire.order(o) for o in account.spot.open_orders.values()],
                    "trades": [spot_wire.my_trade(t) for t in account.spot.trades],
                    "stream_connections": self.x.spot_streams.connections(account.name),
                },
            }
        )

    async def _move(self, request: web.Request, sign: int) -> web.Response:
        account = self._account(request)
        amount = _decimal((await self._body(request)).get("amount"), "amount")
        try:
            self.x.ledger.deposit(account, sign * amount)
        except errors.BinanceError as exc:
            raise web.HTTPBadRequest(text=json.dumps(exc.body())) from None
        return _reply({"wallet": wire.money(account.wallet)})

    async def deposit(self, request: web.Request) -> web.Response:
        return await self._move(request, 1)

    async def withdraw(self, request: web.Request) -> web.Response:
        return await self._move(request, -1)

    async def _spot_move(self, request: web.Request, sign: int) -> web.Response:
        """Credits (or debits) one asset of the spot wallet: `{"asset": "BTC", "amount": "0.5"}`."""
        account = self._account(request)
        body = await self._body(request)
        asset = str(body.get("asset") or "USDT")
        try:
            self.x.spot.deposit(account, asset, sign * _decimal(body.get("amount"), "amount"))
        except errors.BinanceError as exc:
            raise web.HTTPBadRequest(text=json.dumps(exc.body())) from None
        return _reply({"asset": asset, "free": spot_wire.d8(account.spot.balance(asset).free)})

    async def spot_deposit(self, request: web.Request) -> web.Response:
        return await self._spot_move(request, 1)

    async def spot_withdraw(self, request: web.Request) -> web.Response:
        return await self._spot_move(request, -1)

    async def spot_commission(self, request: web.Request) -> web.Response:
        account = self._account(request)
        body = await self._body(request)
        account.spot.commission = (_decimal(body.get("maker"), "maker"), _decimal(body.get("taker"), "taker"))
        maker, taker = account.spot.commission
        return _reply({"maker": wire.fmt(maker), "taker": wire.fmt(taker)})

    async def key(self, request: web.Request) -> web.Response:
        account = self._account(request)
        account.key_enabled = bool((await self._body(request)).get("enabled", True))
        if not account.key_enabled:
            self.x.streams.expire_keys(account.name)
        return _reply({"key_enabled": account.key_enabled})

    async def commission(self, request: web.Request) -> web.Response:
        """The account's own commission rates from now on (a VIP tier or a discount that changed)."""
        account = self._account(request)
        body = await self._body(request)
        account.commission = (_decimal(body.get("maker"), "maker"), _decimal(body.get("taker"), "taker"))
        maker, taker = account.commission
        return _reply({"maker": wire.fmt(maker), "taker": wire.fmt(taker)})

    async def get_prices(self, request: web.Request) -> web.Response:
        prices = self.x.ledger.prices
        return _reply({s: {"last": wire.fmt(p.last), "mark": wire.fmt(p.mark)} for s, p in prices.items()})

    async def set_prices(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        marks = body.get("marks", {})
        for symbol, price in body.get("prices", {}).items():
            if symbol not in self.x.ledger.markets:
                raise web.HTTPBadRequest(text=json.dumps({"error": f"unknown symbol {symbol}"}))
            mark = _decimal(marks[symbol], "mark") if symbol in marks else None
            self.x.ledger.set_price(symbol, _decimal(price, "price"), mark)
        return await self.get_prices(request)

    async def random_walk(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if not body.get("enabled", True):
            await self.x.stop_random_walk()
            return _reply({"enabled": False})
        self.x.start_random_walk(
            seed=int(body.get("seed", 1)),
            interval_s=float(body.get("interval_s", 1.0)),
            volatility=_decimal(body.get("volatility", "0.001"), "volatility"),
        )
        return _reply({"enabled": True})

    async def funding(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        rate = _decimal(body["rate"], "rate") if "rate" in body else None
        return _reply({"payments": self.x.ledger.apply_funding(rate, body.get("symbol"))})

    async def add_fault(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        try:
            fault = Fault(
                path=str(body["path"]),
                kind=body["kind"],
                count=int(body.get("count", 1)),
                method=body.get("method"),
                retry_after=int(body.get("retry_after", 1)),
                delay_s=float(body.get("delay_s", 0)),
                execute=body.get("execute"),
                api_key=self._account_key(body.get("account")),
                **{k: body[k] for k in ("code", "msg") if k in body},
            )
            self.x.faults.add(fault)
        except (KeyError, TypeError, ValueError) as exc:
            raise web.HTTPBadRequest(text=json.dumps({"error": f"bad fault: {exc}"})) from None
        return _reply({"faults": self.x.faults.listing()})

    def _account_key(self, name: str | None) -> str | None:
        if name is None:
            return None
        account = self.x.ledger.accounts.get(name)
        if account is None:
            raise KeyError(f"no account {name!r}")
        return account.api_key

    async def clear_faults(self, request: web.Request) -> web.Response:
        self.x.faults.clear()
        return _reply({"faults": []})

    async def drop_ws(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if body.get("market"):  # the public market streams (mark prices); `down_s`: refused for that long
            down_s = float(_decimal(body.get("down_s", 0), "down_s"))
            return _reply({"dropped": self.x.market_streams.drop_connections(down_s)})
        account = body.get("account")
        return _reply(
            {"dropped": self.x.streams.drop_connections(account) + self.x.spot_streams.drop_connections(account)}
        )

    async def expire_keys(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        return _reply({"expired": self.x.streams.expire_keys(body.get("account"))})

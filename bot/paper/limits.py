"""Binance's limits, enforced as Binance does (SPEC 12): request weight per IP per minute with each endpoint's
documented weight, `X-MBX-USED-WEIGHT-1M` on every answer, 429 (-1003, Retry-After) over the limit and 418
bans, escalating, for an IP that keeps sending during a 429's back-off; new orders counted per account per
10 s and per minute (-1015); websocket connection attempts per IP per 5 minutes."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from bot.paper import errors

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ClockMs = Callable[[], int]

MINUTE_MS = 60_000
TEN_S_MS = 10_000
FIVE_MIN_MS = 300_000
BAN_FIRST_S = 120  # Binance: "from 2 minutes to 3 days" for repeat offenders
BAN_MAX_S = 3 * 24 * 3600
# requests that arrive within this long after a 429 are refused (429 again) but not held against the IP: they
# were on their way when the 429 went out. Any request later in the back-off is a failure to back off, and
# bans the IP. Binance bans for "repeatedly ... failing to back off" without saying after how many; one is
# as strict as it plausibly is.
GRACE_AFTER_429_MS = 1000


class SpotLimitSettings(BaseModel):
    """`limits.spot`: Binance spot's own numbers (another host on Binance, so another budget)."""

    model_config = ConfigDict(extra="forbid")

    request_weight_per_minute: int = Field(default=6000, gt=0)
    orders_per_10s: int = Field(default=100, gt=0)
    orders_per_day: int = Field(default=200_000, gt=0)


class LimitSettings(BaseModel):
    """`limits` in the accounts file; Binance USDⓈ-M's values by default, and spot's under `spot`."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    request_weight_per_minute: int = Field(default=2400, gt=0)
    orders_per_10s: int = Field(default=300, gt=0)
    orders_per_minute: int = Field(default=1200, gt=0)
    ws_connections_per_5min: int = Field(default=300, gt=0)
    spot: SpotLimitSettings = Field(default_factory=SpotLimitSettings)


def _with_symbol(one: int, every: int) -> Callable[[dict[str, str]], int]:
    return lambda params: one if params.get("symbol") else every


# IP weights of the endpoints the paper exchange serves (Binance's USDⓈ-M endpoint docs). A new order weighs 0
# on the IP and 1 on the account's order count. The sapi (sub-account) endpoints have limits of their own on
# Binance and are not counted here.
WEIGHTS: dict[tuple[str, str], int | Callable[[dict[str, str]], int]] = {
    ("GET", "/fapi/v1/ping"): 1,
    ("GET", "/fapi/v1/time"): 1,
    ("GET", "/fapi/v1/exchangeInfo"): 1,
    ("GET", "/fapi/v1/ticker/24hr"): _with_symbol(1, 40),
    ("GET", "/fapi/v1/ticker/price"): _with_symbol(1, 2),
    ("GET", "/fapi/v2/ticker/price"): _with_symbol(1, 2),
    ("GET", "/fapi/v1/ticker/bookTicker"): _with_symbol(2, 5),
    ("GET", "/fapi/v1/premiumIndex"): _with_symbol(1, 10),
    ("GET", "/fapi/v2/account"): 5,
    ("GET", "/fapi/v3/account"): 5,
    ("GET", "/fapi/v2/balance"): 5,
    ("GET", "/fapi/v3/balance"): 5,
    ("GET", "/fapi/v2/positionRisk"): 5,
    ("GET", "/fapi/v3/positionRisk"): 5,
    ("GET", "/fapi/v1/leverageBracket"): 1,
    ("POST", "/fapi/v1/leverage"): 1,
    ("POST", "/fapi/v1/marginType"): 1,
    ("POST", "/fapi/v1/positionSide/dual"): 1,
    ("GET", "/fapi/v1/positionSide/dual"): 30,
    ("GET", "/fapi/v1/symbolConfig"): 5,
    ("GET", "/fapi/v1/commissionRate"): 20,
    ("POST", "/fapi/v1/order"): 0,
    ("GET", "/fapi/v1/order"): 1,
    ("DELETE", "/fapi/v1/order"): 1,
    ("GET", "/fapi/v1/openOrder"): 1,
    ("GET", "/fapi/v1/openOrders"): _with_symbol(1, 40),
    ("GET", "/fapi/v1/allOrders"): 5,
    ("DELETE", "/fapi/v1/allOpenOrders"): 1,
    ("POST", "/fapi/v1/algoOrder"): 0,
    ("GET", "/fapi/v1/algoOrder"): 1,
    ("DELETE", "/fapi/v1/algoOrder"): 1,
    ("GET", "/fapi/v1/openAlgoOrders"): _with_symbol(1, 40),
    ("GET", "/fapi/v1/allAlgoOrders"): 5,
    ("DELETE", "/fapi/v1/algoOpenOrders"): 1,
    ("GET", "/fapi/v1/userTrades"): 5,
    ("GET", "/fapi/v1/income"): 30,
    ("POST", "/fapi/v1/listenKey"): 1,
    ("PUT", "/fapi/v1/listenKey"): 1,
    ("DELETE", "/fapi/v1/listenKey"): 1,
}
# Binance spot's weights (its REST docs); counted on spot's own budget
SPOT_WEIGHTS: dict[tuple[str, str], int | Callable[[dict[str, str]], int]] = {
    ("GET", "/api/v3/ping"): 1,
    ("GET", "/api/v3/time"): 1,
    ("GET", "/api/v3/exchangeInfo"): 20,
    ("GET", "/api/v3/ticker/price"): _with_symbol(2, 4),
    ("GET", "/api/v3/ticker/bookTicker"): _with_symbol(2, 4),
    ("GET", "/api/v3/ticker/24hr"): _with_symbol(2, 80),
    ("GET", "/api/v3/account"): 20,
    ("POST", "/api/v3/order"): 1,
    ("GET", "/api/v3/order"): 4,
    ("DELETE", "/api/v3/order"): 1,
    ("GET", "/api/v3/openOrders"): _with_symbol(6, 80),
    ("DELETE", "/api/v3/openOrders"): 1,
    ("GET", "/api/v3/allOrders"): 20,
    ("GET", "/api/v3/myTrades"): 20,
    ("POST", "/api/v3/userDataStream"): 2,
    ("PUT", "/api/v3/userDataStream"): 2,
    ("DELETE", "/api/v3/userDataStream"): 2,
}
NEW_ORDERS = {("POST", "/fapi/v1/order"), ("POST", "/fapi/v1/algoOrder"), ("POST", "/api/v3/order")}
WEBSOCKETS = ("/ws", "/private/ws", "/stream", "/market/ws", "/market/stream", "/ws-api")
FUTURES, SPOT = "futures", "spot"


def family_of(path: str) -> str:
    """Which of Binance's budgets a path counts on: spot (`/api/`, api.binance.com) or futures."""
    return SPOT if path.startswith("/api/") else FUTURES


def weight_of(method: str, path: str, params: dict[str, str]) -> int | None:
    """The request's IP weight, or None for what the IP budget does not count (sapi, control, websockets)."""
    weight = (SPOT_WEIGHTS if family_of(path) == SPOT else WEIGHTS).get((method, path))
    if weight is None:
        return 1 if path.startswith(("/fapi/", "/api/")) else None
    return weight(params) if callable(weight) else weight


@dataclass
class IpUsage:
    minute: int = -1  # the calendar minute the weight counts in
    weight: int = 0
    peak: int = 0  # the highest weight of any minute so far
    backoff_until_ms: int = 0  # after a 429: requests before this are offences
    limited_at_ms: int = 0  # when the last 429 went out
    banned_until_ms: int = 0
    bans: int = 0
    rejected_429: int = 0
    rejected_418: int = 0
    ws_window: int = -1
    ws_attempts: int = 0
    history: dict[int, int] = field(default_factory=dict)  # minute -> weight, the last 60 minutes
    requests: dict[str, int] = field(default_factory=dict)  # "METHOD /path" -> requests admitted


@dataclass
class OrderUsage:
    ten_s: int = -1
    in_10s: int = 0
    minute: int = -1  # the long window: a minute on futures, a day on spot
    in_minute: int = 0
    rejected: int = 0


DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class Family:
    """One API's numbers: its weight limit per minute, and order counts per 10 s and per its long window."""

    weight_per_minute: int
    orders_per_10s: int
    orders_long: int
    long_ms: int
    long_name: str  # MINUTE / DAY, in the -1015 message
    long_header: str  # X-MBX-ORDER-COUNT-1M / -1D


class Limits:
    def __init__(self, settings: LimitSettings, clock_ms: ClockMs) -> None:
        self.settings = settings
        self.clock_ms = clock_ms
        self.ips: dict[str, IpUsage] = {}  # futures (fapi)
        self.accounts: dict[str, OrderUsage] = {}
        self.spot_ips: dict[str, IpUsage] = {}  # spot (api), a budget of its own as on Binance
        self.spot_accounts: dict[str, OrderUsage] = {}
        self.by_key: dict[str, dict[str, int]] = {}  # API key -> "METHOD /path" -> requests

    def reset(self) -> None:
        for table in (self.ips, self.accounts, self.spot_ips, self.spot_accounts, self.by_key):
            table.clear()

    def family(self, name: str) -> Family:
        if name == SPOT:
            spot = self.settings.spot
            return Family(
                spot.request_weight_per_minute,
                spot.orders_per_10s,
                spot.orders_per_day,
                DAY_MS,
                "DAY",
                "X-MBX-ORDER-COUNT-1D",
            )
        futures = self.settings
        return Family(
            futures.request_weight_per_minute,
            futures.orders_per_10s,
            futures.orders_per_minute,
            MINUTE_MS,
            "MINUTE",
            "X-MBX-ORDER-COUNT-1M",
        )

    def _tables(self, name: str) -> tuple[dict[str, IpUsage], dict[str, OrderUsage]]:
        return (self.spot_ips, self.spot_accounts) if name == SPOT else (self.ips, self.accounts)

    def _count(self, request: web.Request, usage: IpUsage) -> None:
        endpoint = f"{request.method} {request.path}"
        usage.requests[endpoint] = usage.requests.get(endpoint, 0) + 1
        key = request.headers.get("X-MBX-APIKEY")
        if key:
            mine = self.by_key.setdefault(key, {})
            mine[endpoint] = mine.get(endpoint, 0) + 1

    def usage(self) -> dict[str, object]:
        ips, accounts = self._usage(FUTURES)
        spot_ips, spot_accounts = self._usage(SPOT)
        return {
            "settings": self.settings.model_dump(),
            "ips": ips,
            "accounts": accounts,
            "spot": {"ips": spot_ips, "accounts": spot_accounts},
            "requests_by_key": {key: dict(sorted(r.items())) for key, r in self.by_key.items()},
        }

    def _usage(self, name: str) -> tuple[dict[str, object], dict[str, object]]:
        now = self.clock_ms()
        ips, accounts = self._tables(name)
        long_ms = self.family(name).long_ms
        return {
            ip: {
                "used_weight_1m": u.weight if u.minute == now // MINUTE_MS else 0,
                "peak_weight_1m": u.peak,
                "minutes": {str(m): w for m, w in sorted(u.history.items())},
                "rejected_429": u.rejected_429,
                "rejected_418": u.rejected_418,
                "bans": u.bans,
                "banned_until_ms": u.banned_until_ms,
                "backoff_until_ms": u.backoff_until_ms,
                "in_backoff": u.backoff_until_ms > now or u.banned_until_ms > now,
                "ws_attempts_5m": u.ws_attempts if u.ws_window == now // FIVE_MIN_MS else 0,
                "requests": dict(sorted(u.requests.items())),
            }
            for ip, u in ips.items()
        }, {
            name: {
                "orders_10s": o.in_10s if o.ten_s == now // TEN_S_MS else 0,
                ("orders_1d" if long_ms == DAY_MS else "orders_1m"): o.in_minute if o.minute == now // long_ms else 0,
                "rejected": o.rejected,
            }
            for name, o in accounts.items()
        }

    # -- request weight ----------------------------------------------------------------------------

    def _ip(self, ip: str, now: int, family: str = FUTURES) -> IpUsage:
        usage = self._tables(family)[0].setdefault(ip, IpUsage())
        minute = now // MINUTE_MS
        if usage.minute != minute:
            usage.minute, usage.weight = minute, 0
        return usage

    def admit(self, ip: str, weight: int, family: str = FUTURES) -> tuple[web.Response | None, IpUsage]:
        """Counts a request's weight; an answer when Binance would refuse it (429 or 418), else None."""
        now = self.clock_ms()
        usage = self._ip(ip, now, family)
        limit = self.family(family).weight_per_minute
        if usage.banned_until_ms > now:
            usage.rejected_418 += 1
            return self._refuse(418, ip, usage, usage.banned_until_ms - now, limit), usage
        if usage.backoff_until_ms > now and now - usage.limited_at_ms <= GRACE_AFTER_429_MS:
            usage.rejected_429 += 1  # on its way when the 429 went out: refused, not held against the IP
            return self._refuse(429, ip, usage, usage.backoff_until_ms - now, limit), usage
        if usage.backoff_until_ms > now:  # sending on during a 429's back-off: banned, longer each time
            usage.bans += 1
            ban_s = min(BAN_MAX_S, BAN_FIRST_S * 2 ** (usage.bans - 1))
            usage.banned_until_ms = now + ban_s * 1000
            usage.rejected_418 += 1
            return self._refuse(418, ip, usage, ban_s * 1000, limit), usage
        if usage.weight + weight > limit:
            usage.backoff_until_ms = (now // MINUTE_MS + 1) * MINUTE_MS
            usage.limited_at_ms = now
            usage.rejected_429 += 1
            return self._refuse(429, ip, usage, usage.backoff_until_ms - now, limit), usage
        usage.weight += weight
        usage.peak = max(usage.peak, usage.weight)
        usage.history[usage.minute] = usage.weight
        for old in [m for m in usage.history if m < usage.minute - 60]:
            del usage.history[old]
        return None, usage

    def _refuse(self, status: int, ip: str, usage: IpUsage, wait_ms: int, limit: int) -> web.Response:
        if status == 429:
            message = (
                f"Too many requests; current limit of IP({ip}) is {limit} requests per minute. Please use the"
                " websocket for live updates to avoid polling the API."
            )
        else:
            until = datetime.fromtimestamp(usage.banned_until_ms / 1000, UTC).isoformat()
            message = (
                f"Way too many requests; IP({ip}) banned until {until}. Please use the websocket for live updates"
                " to avoid bans."
            )
        return web.Response(
            status=status,
            text=json.dumps({"code": -1003, "msg": message}),
            content_type="application/json",
            headers={"Retry-After": str(max(1, -(-wait_ms // 1000))), "X-MBX-USED-WEIGHT-1M": str(usage.weight)},
        )

    # -- orders ------------------------------------------------------------------------------------

    def count_order(self, account: str, family: str = FUTURES) -> tuple[errors.BinanceError | None, OrderUsage]:
        """Counts a new order on the account's 10 s and long (futures: minute, spot: day) windows; the error
        Binance answers past them."""
        now = self.clock_ms()
        numbers = self.family(family)
        usage = self._tables(family)[1].setdefault(account, OrderUsage())
        if usage.ten_s != now // TEN_S_MS:
            usage.ten_s, usage.in_10s = now // TEN_S_MS, 0
        if usage.minute != now // numbers.long_ms:
            usage.minute, usage.in_minute = now // numbers.long_ms, 0
        if usage.in_10s >= numbers.orders_per_10s:
            usage.rejected += 1
            return errors.too_many_orders(f"{numbers.orders_per_10s} orders per TEN_SECONDS"), usage
        if usage.in_minute >= numbers.orders_long:
            usage.rejected += 1
            return errors.too_many_orders(f"{numbers.orders_long} orders per {numbers.long_name}"), usage
        usage.in_10s += 1
        usage.in_minute += 1
        return None, usage

    # -- websockets --------------------------------------------------------------------------------

    def admit_websocket(self, ip: str) -> bool:
        now = self.clock_ms()
        usage = self.ips.setdefault(ip, IpUsage())
        if usage.ws_window != now // FIVE_MIN_MS:
            usage.ws_window, usage.ws_attempts = now // FIVE_MIN_MS, 0
        usage.ws_attempts += 1
        return usage.ws_attempts <= self.settings.ws_connections_per_5min

    # -- the middleware ----------------------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_paper/"):
            return await handler(request)
        if not self.settings.enabled:
            self._count(request, self.ips.setdefault(request.remote or "unknown", IpUsage()))  # counted anyway
            return await handler(request)
        ip = request.remote or "unknown"
        if request.path.startswith(WEBSOCKETS) and request.method == "GET":
            if not self.admit_websocket(ip):
                return web.Response(
                    status=429,
                    text=json.dumps({"code": -1003, "msg": "Too many websocket connection attempts from this IP."}),
                    content_type="application/json",
                    headers={"Retry-After": "300"},
                )
            return await handler(request)
        weight = weight_of(request.method, request.path, dict(request.query))  # no weight depends on a body
        if weight is None:
            return await handler(request)
        family = family_of(request.path)
        refused, usage = self.admit(ip, weight, family)
        if refused is not None:
            return refused
        self._count(request, usage)
        order_usage = None
        if (request.method, request.path) in NEW_ORDERS:
            account = request.headers.get("X-MBX-APIKEY", "")
            error, order_usage = self.count_order(account, family)
            if error is not None:
                return self._with_counts(
                    web.Response(status=error.status, text=json.dumps(error.body()), content_type="application/json"),
                    usage,
                    order_usage,
                    self.family(family).long_header,
                )
        response = await handler(request)
        if response.status == 429 and "Retry-After" in response.headers:  # a 429 from further in (a fault)
            now = self.clock_ms()
            usage.backoff_until_ms = max(usage.backoff_until_ms, now + int(response.headers["Retry-After"]) * 1000)
            usage.limited_at_ms = now
        return self._with_counts(response, usage, order_usage, self.family(family).long_header)

    @staticmethod
    def _with_counts(
        response: web.StreamResponse, usage: IpUsage, orders: OrderUsage | None, long_header: str
    ) -> web.StreamResponse:
        response.headers["X-MBX-USED-WEIGHT-1M"] = str(usage.weight)
        if orders is not None:
            response.headers["X-MBX-ORDER-COUNT-10S"] = str(orders.in_10s)
            response.headers[long_header] = str(orders.in_minute)
        return response

"""One exchange account through ccxt: equity, positions, orders, with ccxt errors translated at the edge."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlsplit

import ccxt.async_support as ccxt
import ccxt.pro as ccxt_pro
from asyncio_throttle.throttler import Throttler

from bot.core.model import Market
from bot.settings import AccountSettings
from bot.venue.binance_compat import SPOT_OPTIONS, build_binance_spot, build_binanceusdm, linear_error_table
from bot.venue.budget import Priority, RequestBudget
from bot.venue.errors import NotFound, Temporary
from bot.venue.http import SharedHttp
from bot.venue.http1 import Origins
from bot.venue.retry import read_with_retry
from bot.venue.signer import OrderSigner
from bot.venue.translate import retry_after, translate

T = TypeVar("T")

# Binance USDⓈ-M allows 300 orders per 10 s per account; 25 per second keeps a margin under it.
ORDERS_PER_SECOND = 25
# IP weights of the requests the venue makes (SPEC 12; Binance's endpoint docs)
WEIGHT_ONE = 1  # GET/DELETE order, POST leverage, algo order cancel
WEIGHT_EXCHANGE_INFO = 1
WEIGHT_ACCOUNT = 5  # /fapi/v3/account
WEIGHT_POSITIONS = 5  # /fapi/v3/positionRisk
WEIGHT_MARKS_ALL = 10  # premiumIndex without a symbol
WEIGHT_MARK_ONE = 1  # with one
WEIGHT_OPEN_ORDERS_ALL = 40  # openOrders (and openAlgoOrders) without a symbol
WEIGHT_OPEN_ORDERS_ONE = 1  # with one
WEIGHT_INCOME = 30
WEIGHT_COMMISSION_RATE = 20


_STATUS = {
    "FILLED": "closed",
    "PARTIALLY_FILLED": "open",
    "NEW": "open",
    "CANCELED": "canceled",
    "EXPIRED": "expired",
    "REJECTED": "rejected",
}


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    equity: Decimal  # totalMarginBalance (spot: USDT plus every holding at its last price)
    positions: dict[str, Decimal]  # signed base quantity per market id, the ones not flat (spot: holdings)
    symbols: set[str]  # every market id with a position or an open order (spot: an open sale, see below)
    cash: Decimal = Decimal(0)  # spot: the USDT (free and locked)
    # spot: USDT is locked, so some open buy exists in a market the read cannot name (list every open order)
    orders_anywhere: bool = False


@dataclass(frozen=True, slots=True)
class OrderResult:
    order_id: str
    status: str  # ccxt's: closed, open, canceled, expired, rejected
    filled: Decimal
    average: Decimal | None
    fee_base: Decimal = Decimal(0)  # spot: the fee charged in the asset bought (it is not in the holding)
    fee_quote: Decimal = Decimal(0)  # spot: the fee charged in USDT


def build_client(
    account: AccountSettings, timeout_ms: int = 10_000, http: SharedHttp | None = None, stream: bool = False
) -> Any:
    """A ccxt client (ccxt.pro with `stream`) for one configured account, by its environment (SPEC section 8)."""
    assert account.credentials is not None, "secrets are resolved before clients are built"
    key = account.credentials.api_key.get_secret_value()
    secret = account.credentials.api_secret.get_secret_value()
    spot = account.exchange == "binance"
    if account.environment == "paper":
        build = build_binance_spot if spot else build_binanceusdm
        return build(account.api_url, key, secret, timeout_ms=timeout_ms, http=http, stream=stream)
    config: dict[str, Any] = {
        "apiKey": key,
        "secret": secret,
        "timeout": timeout_ms,
        "enableRateLimit": False,
        "options": {"fetchCurrencies": False, "maxRetriesOnFailure": 0} | (SPOT_OPTIONS if spot else {}),
    }
    if http is not None:
        config["session"] = http.session
    client = getattr(ccxt_pro if stream else ccxt, account.exchange)(config)
    if http is not None:
        client.ssl_context = http.ssl_context
    if account.environment == "demo":
        client.enable_demo_trading(True)
    elif account.environment == "testnet":
        client.set_sandbox_mode(True)
    if account.api_url and not spot:
        linear_error_table(client)
    return client


def market_rules(markets: dict[str, Any]) -> dict[str, Market]:
    """Step, minimum quantity and minimum notional per market id, exactly as the exchange's filters say."""
    rules = {}
    for market in markets.values():
        if not market.get("swap") or not market.get("linear"):
            continue
        filters = {f["filterType"]: f for f in market["info"].get("filters", [])}
        lot = filters.get("MARKET_LOT_SIZE") or filters["LOT_SIZE"]
        rules[market["id"]] = Market(
            symbol=market["id"],
            step=Decimal(str(lot["stepSize"])),
            min_qty=Decimal(str(lot["minQty"])),
            min_notional=Decimal(str(filters.get("MIN_NOTIONAL", {}).get("notional", "0"))),
        )
    return rules


def host_of(client: Any) -> str:
    """The exchange host a client's REST requests go to: the unit of the per-IP request budget."""
    api = client.urls.get("api", {})
    spot = getattr(client, "id", "") == "binance"  # ccxt's spot client also knows the futures hosts
    keys = ("private",) if spot else ("fapiPrivate", "private")
    url = api if not isinstance(api, dict) else next((api[k] for k in keys if api.get(k)), "")
    return urlsplit(str(url)).netloc or str(url)


class AccountVenue:
    """One account: every request counted on its host's budget first; reads retried with backoff, writes
    throttled and never retried here."""

    ORDER_API = "fapiPrivate"  # ccxt's API of POST order (spot: `private`)

    def __init__(
        self,
        name: str,
        client: Any,
        orders_per_second: int = ORDERS_PER_SECOND,
        budget: RequestBudget | None = None,
        priority: Priority = Priority.FOLLOWER,
        origins: Origins | None = None,
    ) -> None:
        self.name = name
        self.client = client
        self._throttle = Throttler(rate_limit=orders_per_second, period=1.0)
        # new orders signed as ccxt signs them, sent without its generic request path (see `signer`), on the
        # process's keep-alive connections to the exchange (`origins`; the signer's own when None)
        self._signer = OrderSigner(client, self.ORDER_API, origins) if OrderSigner.usable(client) else None
        self.budget = budget
        self.priority = priority  # of this account's reads (the lead's come before followers')
        self.exchange_info_weight = WEIGHT_EXCHANGE_INFO

    async def _call(
        self, fn: Callable[[], Awaitable[T]], writing: bool = False, weight: int = 0, priority: Priority | None = None
    ) -> T:
        budget = self.budget
        if budget is not None:
            # `priority or ...` would not do: ORDER is 0, and a falsy priority fell back to the account's
            read_priority = self.priority if priority is None else priority
            await budget.acquire(weight, Priority.ORDER if writing else read_priority)
        try:
            result = await fn()
        except Exception as exc:
            error = translate(exc, self.client, writing)
            if budget is not None:
                budget.observe(getattr(self.client, "last_response_headers", None))
                if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
                    status = "418" if " 418 " in f" {exc} " else "429"
                    budget.rate_limited(retry_after(self.client), status)
            raise error from None
        if budget is not None:
            budget.observe(getattr(self.client, "last_response_headers", None))
        return result

    async def _read(self, fn: Callable[[], Awaitable[T]], weight: int, priority: Priority | None = None) -> T:
        return await read_with_retry(lambda: self._call(fn, False, weight, priority))

    async def load_markets(self, source: AccountVenue | None = None) -> dict[str, Any]:
        """Loads the exchange's markets, or shares another client's (by reference: one copy per process). The
        first load also reads the request-weight limit the exchange advertises, for the host's budget."""
        if source is not None:
            self.client.set_markets_from_exchange(source.client)
            markets: dict[str, Any] = self.client.markets
            return markets
        self.client.enableLastJsonResponse = True
        try:
            loaded: dict[str, Any] = await self._read(
                self.client.load_markets, self.exchange_info_weight, Priority.LEAD
            )
            info = self.client.last_json_response
        finally:
            self.client.enableLastJsonResponse = False
        limits = info.get("rateLimits", []) if isinstance(info, dict) else []
        for limit in limits:
            weight = limit.get("rateLimitType") == "REQUEST_WEIGHT" and limit.get("interval") == "MINUTE"
            if weight and self.budget is not None:
                self.budget.set_limit(int(limit["limit"]) // int(limit.get("intervalNum", 1)))
        return loaded

    def symbol(self, market_id: str) -> str:
        return str(self.client.markets_by_id[market_id][0]["symbol"])

    async def equity(self, priority: Priority | None = None) -> Decimal:
        """SPEC section 2: Binance's totalMarginBalance (wallet balance plus unrealized PnL), read from the
        account endpoint as it is: ccxt's balance parsing costs more than the request on a busy daemon."""
        return (await self.account(priority)).equity

    async def account(self, priority: Priority | None = None) -> AccountSnapshot:
        """One read of the account (weight 5): its equity, its positions, and every symbol it has a position or
        an open order in (Binance's v3 account lists exactly those), so that reconciliation can ask for open
        orders symbol by symbol (weight 1 each) instead of listing them all (weight 40)."""
        account = await self._read(self.client.fapiPrivateV3GetAccount, WEIGHT_ACCOUNT, priority)
        value = account.get("totalMarginBalance") if isinstance(account, dict) else None
        if value is None:
            raise Temporary(f"{self.name}: account without totalMarginBalance")
        rows = account.get("positions") or []
        held = {str(r["symbol"]): Decimal(str(r.get("positionAmt", "0"))) for r in rows}
        return AccountSnapshot(Decimal(str(value)), {s: q for s, q in held.items() if q}, set(held))

    async def lead_read(self) -> tuple[dict[str, tuple[Decimal, Decimal]], Decimal]:
        """What the lead poller reads: positions (with entry prices) and equity."""
        positions, equity = await asyncio.gather(self.positions(), self.equity())
        return positions, equity

    async def positions(self) -> dict[str, tuple[Decimal, Decimal]]:
        """Signed base quantity and entry price per market id, from the raw position-risk rows (ccxt's
        fetch_positions would first load every market's leverage brackets into each client: ~1 MB apiece)."""
        rows = await self._read(self.client.fapiPrivateV3GetPositionRisk, WEIGHT_POSITIONS)
        out: dict[str, tuple[Decimal, Decimal]] = {}
        for row in rows:
            amount = Decimal(str(row.get("positionAmt", "0")))
            if amount:
                out[str(row["symbol"])] = (amount, Decimal(str(row.get("entryPrice", "0"))))
        return out

    async def taker_rate(self, market_id: str, priority: Priority | None = None) -> Decimal:
        """The account's taker commission rate (weight 20: read once per account and kept)."""
        row = await self._read(
            lambda: self.client.fapiPrivateGetCommissionRate({"symbol": market_id}), WEIGHT_COMMISSION_RATE, priority
        )
        return Decimal(str(row.get("takerCommissionRate", "0")))

    async def mark_prices(self, priority: Priority | None = None) -> dict[str, Decimal]:
        rows = await self._read(self.client.fapiPublicGetPremiumIndex, WEIGHT_MARKS_ALL, priority)
        return {str(r["symbol"]): Decimal(str(r["markPrice"])) for r in rows}

    async def mark_price(self, market_id: str) -> Decimal:
        """One symbol's mark (weight 1), for a plan: part of the order path, so never held back by reads."""
        row = await self._read(
            lambda: self.client.fapiPublicGetPremiumIndex({"symbol": market_id}), WEIGHT_MARK_ONE, Priority.ORDER
        )
        return Decimal(str(row["markPrice"]))

    async def check_access(self, market_id: str) -> None:
        """A signed request of weight 1 (one symbol's open orders): the key answers and may read the account."""
        await self._read(lambda: self.client.fapiPrivateGetOpenOrders({"symbol": market_id}), WEIGHT_OPEN_ORDERS_ONE)

    async def set_leverage(self, market_id: str, leverage: Decimal) -> None:
        await self._read(
            lambda: self.client.set_leverage(int(leverage), self.symbol(market_id)), WEIGHT_ONE, Priority.ORDER
        )

    @staticmethod
    def _result(raw: dict[str, Any]) -> OrderResult:
        """An order as Binance answers it (POST/GET /fapi/v1/order)."""
        status = _STATUS.get(str(raw.get("status")), "open")
        avg = Decimal(str(raw.get("avgPrice") or "0"))
        return OrderResult(
            str(raw["orderId"]), status, Decimal(str(raw.get("executedQty") or "0")), avg if avg > 0 else None
        )

    async def place(self, market_id: str, side: str, qty: Decimal, reduce_only: bool, cid: str) -> OrderResult:
        """A market order through ccxt's signed transport. The request is built here rather than by
        `create_order`, whose generic request building and parsing cost more CPU than the request itself
        when hundreds of followers copy at once."""
        request: dict[str, Any] = {
            "symbol": market_id,
            "side": side.upper(),
            "type": "MARKET",
            "quantity": f"{qty:f}",
            "newClientOrderId": cid,
            "newOrderRespType": "RESULT",
        }
        if reduce_only:
            request["reduceOnly"] = "true"
        async with self._throttle:
            raw = await self._call(lambda: self._post_order(request), writing=True)
        return self._result(raw)

    def _post_order(self, request: dict[str, Any]) -> Awaitable[Any]:
        if self._signer is not None:
            return self._signer.post(request)
        return getattr(self.client, f"{self.ORDER_API}PostOrder")(request)  # type: ignore[no-any-return]

    async def lookup(self, market_id: str, cid: str) -> OrderResult | None:
        """The order with this client order id, or None once the exchange confirms there is none."""
        try:
            raw = await self._read(
                lambda: self.client.fapiPrivateGetOrder({"symbol": market_id, "origClientOrderId": cid}),
                WEIGHT_ONE,
                Priority.ORDER,
            )
        except NotFound:
            return None
        return self._result(raw)

    async def open_orders(self, market_id: str | None = None) -> list[tuple[str, str, str]]:
        """(market id, order id, client order id) of the open orders: of one symbol (weight 1) or all (40)."""
        if market_id is None:
            rows = await self._read(self.client.fapiPrivateGetOpenOrders, WEIGHT_OPEN_ORDERS_ALL)
        else:
            rows = await self._read(
                lambda: self.client.fapiPrivateGetOpenOrders({"symbol": market_id}), WEIGHT_OPEN_ORDERS_ONE
            )
        return [(str(r["symbol"]), str(r["orderId"]), str(r.get("clientOrderId", ""))) for r in rows]

    async def cancel(self, market_id: str, order_id: str) -> None:
        try:
            await self._call(
                lambda: self.client.cancel_order(order_id, self.symbol(market_id)), writing=True, weight=WEIGHT_ONE
            )
        except NotFound:
            return

    async def open_algo_orders(self, market_id: str | None = None) -> list[tuple[str, str, str]]:
        """Conditional orders (STOP_MARKET, TAKE_PROFIT_MARKET...), which Binance keeps in its algo service,
        apart from `openOrders`: (market id, algo id, client algo id), of one symbol (weight 1) or all (40)."""
        if market_id is None:
            rows = await self._read(self.client.fapiPrivateGetOpenAlgoOrders, WEIGHT_OPEN_ORDERS_ALL)
        else:
            rows = await self._read(
                lambda: self.client.fapiPrivateGetOpenAlgoOrders({"symbol": market_id}), WEIGHT_OPEN_ORDERS_ONE
            )
        return [(str(r["symbol"]), str(r["algoId"]), str(r.get("clientAlgoId", ""))) for r in rows]

    async def cancel_algo(self, algo_id: str) -> None:
        try:
            await self._call(
                lambda: self.client.fapiPrivateDeleteAlgoOrder({"algoId": algo_id}), writing=True, weight=WEIGHT_ONE
            )
        except NotFound:
            return

    async def income(
        self,
        kinds: Sequence[str],
        start_ms: int,
        end_ms: int,
        page_size: int = 1000,
        symbols: Iterable[str] | None = None,
    ) -> dict[str, list[tuple[int, Decimal]]]:
        """The account's own income records of the given types (COMMISSION, FUNDING_FEE, ...) in [start, end),
        by type, of every market (`symbols` is for spot, which lists trades market by market). One type is
        asked for by name; several in one listing of every type (weight 30 a page).

        Pages by time: each page starts again at the last page's final millisecond, since records sharing it
        may lie on both sides of the page's end, and records seen twice are dropped by their identity."""
        out: dict[str, list[tuple[int, Decimal]]] = {kind: [] for kind in kinds}
        seen: set[tuple[str, ...]] = set()
        since = start_ms
        while True:
            request: dict[str, Any] = {"startTime": since, "endTime": end_ms - 1, "limit": page_size}
            if len(out) == 1:
                request["incomeType"] = next(iter(out))
            rows = await self._read(
                lambda r=request: self.client.fapiPrivateGetIncome(r),  # type: ignore[misc]
                WEIGHT_INCOME,
                Priority.SETTLEMENT,
            )
            for r in rows:
                identity = tuple(str(r.get(k, "")) for k in ("tranId", "tradeId", "incomeType", "symbol", "time"))
                kind = str(r.get("incomeType", ""))
                if identity not in seen and kind in out:
                    seen.add(identity)
                    out[kind].append((int(r["time"]), Decimal(str(r["income"]))))
            if len(rows) < page_size:
                return out
            last = int(rows[-1]["time"])
            # a full page inside one millisecond cannot be paged by time: move on rather than loop
            since = last if last > since else last + 1

    async def universal_transfer(self, client_tran_id: str, from_email: str, to_email: str, amount: Decimal) -> str:
        """Master account only: moves USDT between two sub-accounts' futures wallets, idempotent by id."""
        request = {
            "fromEmail": from_email,
            "toEmail": to_email,
            "fromAccountType": "USDT_FUTURE",
            "toAccountType": "USDT_FUTURE",
            "asset": "USDT",
            "amount": f"{amount:f}",
            "clientTranId": client_tran_id,
        }
        answer = await self._call(lambda: self.client.sapiPostSubAccountUniversalTransfer(request), writing=True)
        return str(answer.get("tranId", ""))

    async def find_transfer(self, client_tran_id: str) -> str | None:
        answer = await self._read(  # sapi: limits of its own on Binance, not the fapi weight
            lambda: self.client.sapiGetSubAccountUniversalTransfer({"clientTranId": client_tran_id}), 0
        )
        rows = answer.get("result", []) if isinstance(answer, dict) else []
        return str(rows[0]["tranId"]) if rows else None

    async def close(self) -> None:
        if self._signer is not None:
            self._signer.close()
        await self.client.close()

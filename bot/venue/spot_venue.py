"""One Binance spot account through ccxt `binance`: balances, last prices, market orders with their fees, open
orders, trades and transfers between spot wallets. The same budget, throttle and error translation as futures
(`AccountVenue`), with spot's endpoints and weights (SPEC 12)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bot.core.model import ZERO, Market
from bot.venue.budget import Priority
from bot.venue.ccxt_venue import WEIGHT_ONE, AccountSnapshot, AccountVenue, OrderResult
from bot.venue.errors import NotFound, Temporary

# IP weights of Binance spot's endpoints (SPEC 12 and Binance's spot REST docs)
SPOT_WEIGHT_EXCHANGE_INFO = 20
SPOT_WEIGHT_ACCOUNT = 20
SPOT_WEIGHT_ORDER = 4  # GET /api/v3/order
SPOT_WEIGHT_OPEN_ORDERS_ONE = 6
SPOT_WEIGHT_OPEN_ORDERS_ALL = 80
SPOT_WEIGHT_TRADES = 20
SPOT_WEIGHT_PRICE_ONE = 2
SPOT_WEIGHT_PRICES_ALL = 4
# Binance spot allows 100 orders per 10 s per account; 8 per second keeps a margin under it
SPOT_ORDERS_PER_SECOND = 8


@dataclass(frozen=True, slots=True)
class SpotPair:
    """A spot market's two assets, by market id (`BTCUSDT` → BTC, USDT)."""

    symbol: str
    base: str
    quote: str


@dataclass(frozen=True, slots=True)
class SpotFill:
    """One of the account's spot trades: what it did to the holding and to USDT, fees included."""

    trade_id: str
    order_id: str
    symbol: str
    side: str  # buy / sell
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    time_ms: int


def spot_market_rules(markets: dict[str, Any]) -> tuple[dict[str, Market], dict[str, SpotPair]]:
    """Step, minimum quantity and minimum notional per spot market id, as the exchange's filters say, and each
    market's assets. Only markets quoted in USDT are copied (SPEC 11)."""
    rules: dict[str, Market] = {}
    pairs: dict[str, SpotPair] = {}
    for market in markets.values():
        if not market.get("spot") or market.get("quote") != "USDT":
            continue
        info = market["info"]
        filters = {f["filterType"]: f for f in info.get("filters", [])}
        lot = filters["LOT_SIZE"]
        notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}
        minimum = notional.get("minNotional", "0") if notional.get("applyMinToMarket", True) else "0"
        market_id = str(market["id"])
        rules[market_id] = Market(
            symbol=market_id,
            step=Decimal(str(lot["stepSize"])),
            min_qty=Decimal(str(lot["minQty"])),
            min_notional=Decimal(str(minimum)),
        )
        pairs[market_id] = SpotPair(market_id, str(info["baseAsset"]), str(info["quoteAsset"]))
    return rules, pairs


class SpotVenue(AccountVenue):
    """One spot account. Holdings are keyed by market id (`BTCUSDT`), as positions are on futures."""

    pairs: dict[str, SpotPair]
    ORDER_API = "private"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("orders_per_second", SPOT_ORDERS_PER_SECOND)
        super().__init__(*args, **kwargs)
        self.pairs = {}
        self.exchange_info_weight = SPOT_WEIGHT_EXCHANGE_INFO

    async def load_markets(self, source: AccountVenue | None = None) -> dict[str, Any]:
        loaded = await super().load_markets(source)
        self.pairs = spot_market_rules(loaded)[1]
        return loaded

    async def _account_read(self, priority: Priority | None) -> dict[str, Any]:
        """`GET /api/v3/account` (weight 20): balances and commission rates."""
        raw = await self._read(
            lambda: self.client.privateGetAccount({"omitZeroBalances": "true"}), SPOT_WEIGHT_ACCOUNT, priority
        )
        return raw if isinstance(raw, dict) else {}

    async def balances(self, priority: Priority | None = None) -> dict[str, tuple[Decimal, Decimal]]:
        """(free, locked) per asset the account holds (weight 20)."""
        raw = await self._account_read(priority)
        rows = raw.get("balances")
        if rows is None:
            raise Temporary(f"{self.name}: spot account without balances")
        out = {}
        for row in rows:
            free, locked = Decimal(str(row["free"])), Decimal(str(row["locked"]))
            if free or locked:
                out[str(row["asset"])] = (free, locked)
        return out

    def holdings(self, balances: dict[str, tuple[Decimal, Decimal]]) -> dict[str, Decimal]:
        """The holding (free + locked) of every copied market's base asset, by market id."""
        out = {}
        for pair in self.pairs.values():
            free, locked = balances.get(pair.base, (ZERO, ZERO))
            if free + locked:
                out[pair.symbol] = free + locked
        return out

    async def account(
        self, priority: Priority | None = None, prices: dict[str, Decimal] | None = None
    ) -> AccountSnapshot:
        """One read of the balances (weight 20), valued at `prices` (else one read of every last price, weight
        4): equity = USDT + every asset with a USDT market at its last price; positions = the holdings by
        market id; symbols = the markets it holds (spot's account read does not list the open orders')."""
        balances = await self.balances(priority)
        prices = prices if prices is not None else await self.last_prices(priority)
        return self.snapshot(balances, prices)

    def snapshot(self, balances: dict[str, tuple[Decimal, Decimal]], prices: dict[str, Decimal]) -> AccountSnapshot:
        """Equity and holdings from one balances read. Spot's account read does not list where open orders are,
        but what they lock tells: an open sale locks its base asset (that market), an open buy locks USDT (some
        market: `orders_anywhere`). The bot's own orders are market orders, which never rest."""
        holdings = self.holdings(balances)
        free_usdt, locked_usdt = balances.get("USDT", (ZERO, ZERO))
        usdt = free_usdt + locked_usdt
        valued = sum((q * prices[s] for s, q in holdings.items() if s in prices), ZERO)
        selling = {p.symbol for p in self.pairs.values() if balances.get(p.base, (ZERO, ZERO))[1] > 0}
        return AccountSnapshot(usdt + valued, holdings, selling, usdt, orders_anywhere=locked_usdt > 0)

    async def positions(self) -> dict[str, tuple[Decimal, Decimal]]:
        """The holdings by market id, with no entry price (a spot lead's fill price comes from its trades)."""
        return {s: (q, ZERO) for s, q in self.holdings(await self.balances()).items()}

    async def lead_read(self) -> tuple[dict[str, tuple[Decimal, Decimal]], Decimal]:
        """The lead's holdings and equity from one balances read and one price read (SPEC 11: the same snapshot
        shows the change and values the equity)."""
        balances, prices = await self.balances(), await self.last_prices()
        snapshot = self.snapshot(balances, prices)
        return {s: (q, ZERO) for s, q in snapshot.positions.items()}, snapshot.equity

    async def mark_prices(self, priority: Priority | None = None) -> dict[str, Decimal]:
        """Spot has no mark price: the last price is what holdings are valued and sized at."""
        return await self.last_prices(priority)

    async def mark_price(self, market_id: str) -> Decimal:
        return await self.last_price(market_id)

    async def open_algo_orders(self, market_id: str | None = None) -> list[tuple[str, str, str]]:
        return []  # the conditional orders are futures' (spot's stop orders are ordinary open orders)

    async def set_leverage(self, market_id: str, leverage: Decimal) -> None:
        raise AssertionError("spot has no leverage: nothing asks a spot venue to set it")

    async def last_prices(self, priority: Priority | None = None) -> dict[str, Decimal]:
        rows = await self._read(self.client.publicGetTickerPrice, SPOT_WEIGHT_PRICES_ALL, priority)
        return {str(r["symbol"]): Decimal(str(r["price"])) for r in rows}

    async def last_price(self, market_id: str) -> Decimal:
        """One market's last price (weight 2), for a plan: on the order path, never held back by reads."""
        row = await self._read(
            lambda: self.client.publicGetTickerPrice({"symbol": market_id}), SPOT_WEIGHT_PRICE_ONE, Priority.ORDER
        )
        return Decimal(str(row["price"]))

    async def taker_rate(self, market_id: str, priority: Priority | None = None) -> Decimal:
        """The account's spot taker rate, from its account read (weight 20: read once per account and kept)."""
        rates = (await self._account_read(priority)).get("commissionRates") or {}
        return Decimal(str(rates.get("taker", "0")))

    async def check_access(self, market_id: str) -> None:
        await self._read(lambda: self.client.privateGetOpenOrders({"symbol": market_id}), SPOT_WEIGHT_OPEN_ORDERS_ONE)

    def _spot_result(self, raw: dict[str, Any]) -> OrderResult:
        """An order as Binance spot answers it; with `fills` (a FULL answer) the fees in each asset."""
        status = {"FILLED": "closed", "PARTIALLY_FILLED": "open", "NEW": "open", "CANCELED": "canceled"}.get(
            str(raw.get("status")), "expired" if raw.get("status") in ("EXPIRED", "EXPIRED_IN_MATCH") else "rejected"
        )
        filled = Decimal(str(raw.get("executedQty") or "0"))
        quote = Decimal(str(raw.get("cummulativeQuoteQty") or "0"))
        pair = self.pairs.get(str(raw.get("symbol")))
        fee_base = fee_quote = ZERO
        for fill in raw.get("fills") or []:
            fee = Decimal(str(fill.get("commission", "0")))
            if pair is not None and fill.get("commissionAsset") == pair.base:
                fee_base += fee
            elif pair is not None and fill.get("commissionAsset") == pair.quote:
                fee_quote += fee
        return OrderResult(str(raw["orderId"]), status, filled, quote / filled if filled else None, fee_base, fee_quote)

    async def place(self, market_id: str, side: str, qty: Decimal, reduce_only: bool, cid: str) -> OrderResult:
        """A spot market order (spot has no reduce-only: sales are bounded by the plan). FULL answer: its fills
        and the fee of each, in the asset it was charged in."""
        request = {
            "symbol": market_id,
            "side": side.upper(),
            "type": "MARKET",
            "quantity": f"{qty:f}",
            "newClientOrderId": cid,
            "newOrderRespType": "FULL",
        }
        async with self._throttle:
            raw = await self._call(lambda: self._post_order(request), writing=True)
        return self._spot_result(raw)

    async def lookup(self, market_id: str, cid: str) -> OrderResult | None:
        """The order with this client order id (weight 4), with its fees from its trades when it filled (weight
        20): or None once the exchange confirms there is none."""
        try:
            raw = await self._read(
                lambda: self.client.privateGetOrder({"symbol": market_id, "origClientOrderId": cid}),
                SPOT_WEIGHT_ORDER,
                Priority.ORDER,
            )
        except NotFound:
            return None
        if Decimal(str(raw.get("executedQty") or "0")):
            trades = await self._read(
                lambda: self.client.privateGetMyTrades({"symbol": market_id, "orderId": raw["orderId"]}),
                SPOT_WEIGHT_TRADES,
                Priority.ORDER,
            )
            raw = {**raw, "fills": trades}
        return self._spot_result(raw)

    async def open_orders(self, market_id: str | None = None) -> list[tuple[str, str, str]]:
        if market_id is None:
            rows = await self._read(self.client.privateGetOpenOrders, SPOT_WEIGHT_OPEN_ORDERS_ALL)
        else:
            rows = await self._read(
                lambda: self.client.privateGetOpenOrders({"symbol": market_id}), SPOT_WEIGHT_OPEN_ORDERS_ONE
            )
        return [(str(r["symbol"]), str(r["orderId"]), str(r.get("clientOrderId", ""))) for r in rows]

    async def cancel(self, market_id: str, order_id: str) -> None:
        try:
            await self._call(
                lambda: self.client.privateDeleteOrder({"symbol": market_id, "orderId": order_id}),
                writing=True,
                weight=WEIGHT_ONE,
            )
        except NotFound:
            return

    async def trades(
        self, market_id: str, start_ms: int, end_ms: int, priority: Priority | None = None
    ) -> list[SpotFill]:
        """The account's trades in one market within [start, end) (weight 20 a page of 1,000)."""
        out: dict[str, SpotFill] = {}  # by trade id: a page boundary inside one millisecond repeats trades
        since = start_ms
        while True:
            request = {"symbol": market_id, "startTime": since, "endTime": end_ms - 1, "limit": 1000}
            rows = await self._read(
                lambda r=request: self.client.privateGetMyTrades(r),  # type: ignore[misc]
                SPOT_WEIGHT_TRADES,
                priority,
            )
            for r in rows:
                out[str(r["id"])] = SpotFill(
                    str(r["id"]),
                    str(r["orderId"]),
                    str(r["symbol"]),
                    "buy" if r.get("isBuyer") else "sell",
                    Decimal(str(r["qty"])),
                    Decimal(str(r["price"])),
                    Decimal(str(r["commission"])),
                    str(r["commissionAsset"]),
                    int(r["time"]),
                )
            if len(rows) < 1000:
                return list(out.values())
            last = int(rows[-1]["time"])
            since = last if last > since else last + 1  # a full page in one millisecond: move on, not loop

    async def income(
        self,
        kinds: Sequence[str],
        start_ms: int,
        end_ms: int,
        page_size: int = 1000,
        symbols: Iterable[str] | None = None,
    ) -> dict[str, list[tuple[int, Decimal]]]:
        """Settlement's records on spot: COMMISSION from the account's trades in `symbols` (the markets it
        traded; None: every market, weight 20 each), valued in USDT at each trade's price (a buy's fee is
        charged in the asset bought); spot has no funding."""
        out: dict[str, list[tuple[int, Decimal]]] = {kind: [] for kind in kinds}
        if "COMMISSION" not in out:
            return out
        wanted = set(self.pairs) if symbols is None else set(symbols) & set(self.pairs)
        for symbol, pair in sorted((s, p) for s, p in self.pairs.items() if s in wanted):
            for fill in await self.trades(symbol, start_ms, end_ms, Priority.SETTLEMENT):
                fee = fill.fee * fill.price if fill.fee_asset == pair.base else fill.fee
                out["COMMISSION"].append((fill.time_ms, -fee))
        return out

    async def universal_transfer(self, client_tran_id: str, from_email: str, to_email: str, amount: Decimal) -> str:
        """Master account only: moves USDT between two sub-accounts' spot wallets, idempotent by id."""
        request = {
            "fromEmail": from_email,
            "toEmail": to_email,
            "fromAccountType": "SPOT",
            "toAccountType": "SPOT",
            "asset": "USDT",
            "amount": f"{amount:f}",
            "clientTranId": client_tran_id,
        }
        answer = await self._call(lambda: self.client.sapiPostSubAccountUniversalTransfer(request), writing=True)
        return str(answer.get("tranId", ""))

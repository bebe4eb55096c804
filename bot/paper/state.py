"""The paper exchange's state: accounts, positions, orders, trades and income, all in Decimal."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

ZERO = Decimal(0)
EIGHT_PLACES = Decimal("0.00000001")


def q8(value: Decimal) -> Decimal:
    """Binance books money to 8 decimal places."""
    return value.quantize(EIGHT_PLACES, rounding=ROUND_HALF_EVEN)


@dataclass(slots=True)
class Position:
    symbol: str
    amount: Decimal = ZERO  # signed base quantity: long > 0, short < 0
    entry_price: Decimal = ZERO
    update_ms: int = 0


@dataclass(slots=True)
class Order:
    order_id: int
    client_id: str
    symbol: str
    side: str  # BUY / SELL
    type: str  # MARKET / LIMIT
    orig_type: str
    qty: Decimal
    price: Decimal
    time_in_force: str
    reduce_only: bool
    close_position: bool
    time_ms: int
    update_ms: int
    status: str = "NEW"
    executed: Decimal = ZERO
    cum_quote: Decimal = ZERO
    stop_price: Decimal = ZERO
    working_type: str = "CONTRACT_PRICE"

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.executed

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")

    @property
    def avg_price(self) -> Decimal:
        return self.cum_quote / self.executed if self.executed else ZERO

    @property
    def signed_side(self) -> int:
        return 1 if self.side == "BUY" else -1


@dataclass(slots=True)
class AlgoOrder:
    """A conditional order (STOP_MARKET, TAKE_PROFIT_MARKET) held by the algo service until it triggers."""

    algo_id: int
    client_algo_id: str
    order_type: str
    symbol: str
    side: str
    qty: Decimal
    trigger_price: Decimal
    working_type: str
    reduce_only: bool
    close_position: bool
    create_ms: int
    update_ms: int
    status: str = "NEW"  # NEW, CANCELED, FINISHED, EXPIRED
    trigger_ms: int = 0
    actual_order_id: int | None = None

    @property
    def is_open(self) -> bool:
        return self.status == "NEW"


@dataclass(frozen=True, slots=True)
class Trade:
    trade_id: int
    order_id: int
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    realized_pnl: Decimal
    commission: Decimal
    maker: bool
    time_ms: int

    @property
    def quote_qty(self) -> Decimal:
        return self.price * self.qty


@dataclass(frozen=True, slots=True)
class Income:
    tran_id: int
    symbol: str
    income_type: str  # REALIZED_PNL, COMMISSION, FUNDING_FEE, TRANSFER
    amount: Decimal
    info: str
    time_ms: int
    trade_id: str = ""


@dataclass(slots=True)
class SpotBalance:
    free: Decimal = ZERO
    locked: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


@dataclass(frozen=True, slots=True)
class SpotTrade:
    """One spot fill: a buy's commission in the asset bought, a sale's in the quote asset."""

    trade_id: int
    order_id: int
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    maker: bool
    time_ms: int


@dataclass(slots=True)
class SpotOrder:
    order_id: int
    client_id: str
    symbol: str
    side: str  # BUY / SELL
    type: str  # MARKET / LIMIT
    qty: Decimal
    price: Decimal
    time_in_force: str
    time_ms: int
    update_ms: int
    quote_order_qty: Decimal = ZERO
    status: str = "NEW"
    executed: Decimal = ZERO
    cum_quote: Decimal = ZERO
    fills: list[SpotTrade] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.executed

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")


@dataclass(slots=True)
class SpotWallet:
    """An account's spot wallet: balances per asset (free and locked), orders and trades."""

    balances: dict[str, SpotBalance] = field(default_factory=dict)
    orders: dict[int, SpotOrder] = field(default_factory=dict)
    open_orders: dict[int, SpotOrder] = field(default_factory=dict)
    trades: list[SpotTrade] = field(default_factory=list)
    commission: tuple[Decimal, Decimal] | None = None  # (maker, taker) of this account; None: the exchange's
    update_ms: int = 0

    def balance(self, asset: str) -> SpotBalance:
        found = self.balances.get(asset)
        if found is None:
            found = self.balances[asset] = SpotBalance()
        return found


@dataclass(slots=True)
class Account:
    name: str
    api_key: str
    api_secret: str = field(repr=False)
    email: str
    wallet: Decimal
    key_enabled: bool = True
    dual_side: bool = False
    commission: tuple[Decimal, Decimal] | None = None  # (maker, taker) of this account; None: the exchange's
    positions: dict[str, Position] = field(default_factory=dict)
    leverage: dict[str, int] = field(default_factory=dict)
    margin_type: dict[str, str] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)
    open_orders: dict[int, Order] = field(default_factory=dict)
    algo_orders: dict[int, AlgoOrder] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    income: list[Income] = field(default_factory=list)
    spot: SpotWallet = field(default_factory=SpotWallet)

    def position(self, symbol: str) -> Position:
        pos = self.positions.get(symbol)
        if pos is None:
            pos = self.positions[symbol] = Position(symbol)
        return pos

    def leverage_of(self, symbol: str) -> int:
        return self.leverage.get(symbol, 20)

    def margin_type_of(self, symbol: str) -> str:
        return self.margin_type.get(symbol, "CROSSED")

    def latest_order_by_client_id(self, client_id: str) -> Order | None:
        found = [o for o in self.orders.values() if o.client_id == client_id]
        return max(found, key=lambda o: o.order_id) if found else None


@dataclass(slots=True)
class PriceState:
    """Last and mark price of one market plus its rolling 24h-style ticker figures since start."""

    last: Decimal
    mark: Decimal
    open: Decimal
    high: Decimal
    low: Decimal
    volume: Decimal = ZERO
    quote_volume: Decimal = ZERO
    count: int = 0
    last_qty: Decimal = ZERO
    open_ms: int = 0
    funding_rate: Decimal = Decimal("0.0001")

    @classmethod
    def starting_at(cls, price: Decimal, now_ms: int) -> PriceState:
        return cls(last=price, mark=price, open=price, high=price, low=price, open_ms=now_ms)

    def move_to(self, last: Decimal, mark: Decimal) -> None:
        self.last = last
        self.mark = mark
        self.high = max(self.high, last)
        self.low = min(self.low, last)

    def record_trade(self, qty: Decimal, price: Decimal) -> None:
        self.volume += qty
        self.quote_volume += qty * price
        self.count += 1
        self.last_qty = qty

"""The paper exchange's ledger, part one: the types it trades in (order requests, margin figures, transfers),
its accounts with their settings and figures, and the ids it hands out. The trading itself is `ledger.py`."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from bot.paper import errors
from bot.paper.markets import MarketSpec
from bot.paper.state import ZERO, Account, AlgoOrder, Order, PriceState, Trade, q8

CLIENT_ID_PATTERN = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
TIME_IN_FORCE = ("GTC", "IOC", "FOK", "GTX")


class Listener(Protocol):
    """Receives what the user data stream publishes."""

    def order_update(self, account: Account, order: Order, execution: str, trade: Trade | None) -> None: ...

    def account_update(self, account: Account, reason: str, symbols: Iterable[str]) -> None: ...


class _Silent:
    def order_update(self, account: Account, order: Order, execution: str, trade: Trade | None) -> None:
        return None

    def account_update(self, account: Account, reason: str, symbols: Iterable[str]) -> None:
        return None


@dataclass(frozen=True, slots=True)
class OrderRequest:
    symbol: str
    side: str
    type: str
    quantity: Decimal | None = None
    price: Decimal | None = None
    time_in_force: str | None = None
    reduce_only: bool = False
    close_position: bool = False
    client_id: str | None = None
    trigger_price: Decimal | None = None
    working_type: str = "CONTRACT_PRICE"
    position_side: str = "BOTH"


@dataclass(frozen=True, slots=True)
class Figures:
    """An account's margin figures in USDT, as Binance's account endpoint reports them."""

    wallet: Decimal
    unrealized: Decimal
    position_margin: Decimal
    order_margin: Decimal
    maint_margin: Decimal

    @property
    def margin_balance(self) -> Decimal:
        return self.wallet + self.unrealized

    @property
    def initial_margin(self) -> Decimal:
        return self.position_margin + self.order_margin

    @property
    def available(self) -> Decimal:
        """Binance's "available for order": never below zero, so free + used can exceed the total."""
        return max(ZERO, self.margin_balance - self.initial_margin)

    @property
    def max_withdraw(self) -> Decimal:
        return max(ZERO, min(self.available, self.wallet))


@dataclass(frozen=True, slots=True)
class Transfer:
    tran_id: int
    client_tran_id: str
    from_email: str
    to_email: str
    asset: str
    amount: Decimal
    time_ms: int
    account_type: str = "USDT_FUTURE"  # SPOT for a move between spot wallets


FUNDING_INTERVAL_MS = 8 * 3600 * 1000


class Accounts:
    """The ledger's accounts (by name, API key and email), their settings and margin figures, the markets and
    their prices, and the ids it hands out."""

    def __init__(
        self,
        markets: Iterable[MarketSpec],
        prices: dict[str, Decimal],
        commission: tuple[Decimal, Decimal],
        clock_ms: Callable[[], int],
        listener: Listener | None = None,
    ) -> None:
        self.markets = {m.symbol: m for m in markets}
        self.clock_ms = clock_ms
        self.maker_rate, self.taker_rate = commission
        self.listener: Listener = listener or _Silent()
        now = clock_ms()
        self.prices = {s: PriceState.starting_at(prices.get(s, Decimal(1)), now) for s in self.markets}
        self.accounts: dict[str, Account] = {}
        self._by_key: dict[str, Account] = {}
        self._by_email: dict[str, Account] = {}
        self._ids = itertools.count(now // 1000 * 10)
        self._resting: dict[str, dict[tuple[str, int], Order]] = {s: {} for s in self.markets}
        self._algos: dict[str, dict[tuple[str, int], AlgoOrder]] = {s: {} for s in self.markets}
        self.transfers: dict[str, Transfer] = {}
        self.funding_interval_ms = FUNDING_INTERVAL_MS  # funding times: every multiple of it (Binance: 8 h)
        self.price_watchers: list[Callable[[str, Decimal], None]] = []  # the spot book, on every new last price

    # -- accounts -------------------------------------------------------------------------------

    def add_account(self, account: Account) -> None:
        self.accounts[account.name] = account
        self._by_key[account.api_key] = account
        self._by_email[account.email] = account

    def rates(self, account: Account) -> tuple[Decimal, Decimal]:
        """The account's (maker, taker) commission rates."""
        return account.commission or (self.maker_rate, self.taker_rate)

    def by_key(self, api_key: str) -> Account | None:
        account = self._by_key.get(api_key)
        return account if account is not None and account.key_enabled else None

    def by_email(self, email: str) -> Account:
        account = self._by_email.get(email)
        if account is None:
            raise errors.sub_account_unknown()
        return account

    def market(self, symbol: str | None) -> MarketSpec:
        if not symbol:
            raise errors.mandatory("symbol")
        spec = self.markets.get(symbol)
        if spec is None:
            raise errors.invalid_symbol()
        return spec

    def next_id(self) -> int:
        return next(self._ids)

    def figures(self, account: Account) -> Figures:
        unrealized = position_margin = order_margin = maint = ZERO
        for pos in account.positions.values():
            if not pos.amount:
                continue
            mark = self.prices[pos.symbol].mark
            notional = abs(pos.amount) * mark
            unrealized += pos.amount * (mark - pos.entry_price)
            position_margin += notional / account.leverage_of(pos.symbol)
            bracket = self.markets[pos.symbol].bracket_for(notional)
            maint += notional * bracket.mmr - bracket.cum
        for order in account.open_orders.values():
            if not order.reduce_only:
                order_margin += order.remaining * order.price / account.leverage_of(order.symbol)
        return Figures(account.wallet, q8(unrealized), q8(position_margin), q8(order_margin), q8(maint))

    # -- settings ---------------------------------------------------------------------------------

    def set_leverage(self, account: Account, symbol: str, leverage: str | None) -> tuple[int, Decimal]:
        spec = self.market(symbol)
        if not leverage:
            raise errors.mandatory("leverage")
        if not leverage.isdigit() or not 1 <= int(leverage) <= spec.max_leverage:
            raise errors.leverage_invalid(leverage)
        value = int(leverage)
        pos = account.positions.get(symbol)
        if pos is not None and pos.amount and abs(pos.amount) * self.prices[symbol].mark > max_notional(spec, value):
            raise errors.max_position_exceeded()
        account.leverage[symbol] = value
        return value, max_notional(spec, value)

    def set_margin_type(self, account: Account, symbol: str, margin_type: str | None) -> None:
        self.market(symbol)
        if margin_type not in ("CROSSED", "ISOLATED"):
            raise errors.mandatory("marginType")
        if account.margin_type_of(symbol) == margin_type:
            raise errors.no_need_margin_type()
        if account.position(symbol).amount or any(o.symbol == symbol for o in account.open_orders.values()):
            raise errors.margin_type_with_position()
        account.margin_type[symbol] = margin_type

    def set_dual_side(self, account: Account, dual: bool) -> None:
        if dual == account.dual_side:
            raise errors.no_need_position_side()
        if any(p.amount for p in account.positions.values()) or account.open_orders:
            raise errors.position_side_locked()
        account.dual_side = dual


def max_notional(spec: MarketSpec, leverage: int) -> Decimal:
    """The largest position notional allowed at `leverage`: the cap of the last bracket that permits it."""
    allowed = [b.cap for b in spec.brackets if b.initial_leverage >= leverage]
    return max(allowed) if allowed else spec.brackets[0].cap


def triggers(order_type: str, side: str, trigger: Decimal, price: Decimal) -> bool:
    """STOP_MARKET buys trigger at or above the trigger, sells at or below; TAKE_PROFIT_MARKET the reverse."""
    rising = (order_type == "STOP_MARKET") == (side == "BUY")
    return price >= trigger if rising else price <= trigger

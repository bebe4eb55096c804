"""The paper exchange's spot engine: balances per asset (free and locked), orders, fills, fees, transfers.

Binance spot's rules, as the daemon depends on them: filters checked as `-1013 Filter failure: ...`, an order
the balance cannot pay refused with `-2010`, a buy's fee taken in the asset bought and a sale's in the quote
asset, money to 8 decimals. Spot and futures share the accounts and the last prices (one book per symbol).
Synchronous state changes only, as the futures ledger.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Protocol

from bot.paper import errors
from bot.paper.accounts import CLIENT_ID_PATTERN, Transfer
from bot.paper.ledger import Ledger
from bot.paper.markets import SpotMarketSpec, decimals_of
from bot.paper.state import ZERO, Account, SpotOrder, SpotTrade, SpotWallet, q8

SPOT_COMMISSION = (Decimal("0.001"), Decimal("0.001"))  # Binance spot's default maker and taker, without BNB
ASSET_PRECISION = 8
SPOT_TIME_IN_FORCE = ("GTC", "IOC", "FOK")


class SpotListener(Protocol):
    """Receives what the spot user data stream publishes."""

    def spot_order_update(
        self, account: Account, order: SpotOrder, execution: str, trade: SpotTrade | None
    ) -> None: ...

    def spot_balances(self, account: Account, assets: Iterable[str]) -> None: ...

    def spot_balance_delta(self, account: Account, asset: str, delta: Decimal) -> None: ...


class _Silent:
    def spot_order_update(self, account: Account, order: SpotOrder, execution: str, trade: SpotTrade | None) -> None:
        return None

    def spot_balances(self, account: Account, assets: Iterable[str]) -> None:
        return None

    def spot_balance_delta(self, account: Account, asset: str, delta: Decimal) -> None:
        return None


@dataclass(frozen=True, slots=True)
class SpotOrderRequest:
    symbol: str
    side: str
    type: str
    quantity: Decimal | None = None
    quote_order_qty: Decimal | None = None
    price: Decimal | None = None
    time_in_force: str | None = None
    client_id: str | None = None


def filter_failure(name: str) -> errors.BinanceError:
    return errors.BinanceError(-1013, f"Filter failure: {name}")


def insufficient_balance() -> errors.BinanceError:
    return errors.BinanceError(-2010, "Account has insufficient balance for requested action.")


def too_much_precision(name: str) -> errors.BinanceError:
    return errors.BinanceError(-1111, f"Parameter '{name}' has too much precision.")


class SpotLedger:
    def __init__(
        self,
        ledger: Ledger,
        markets: Iterable[SpotMarketSpec],
        commission: tuple[Decimal, Decimal] = SPOT_COMMISSION,
        listener: SpotListener | None = None,
    ) -> None:
        self.ledger = ledger
        self.markets = {m.symbol: m for m in markets}
        self.maker_rate, self.taker_rate = commission
        self.listener: SpotListener = listener or _Silent()
        self._resting: dict[str, dict[tuple[str, int], SpotOrder]] = {s: {} for s in self.markets}
        self.transfers: dict[str, Transfer] = {}
        ledger.price_watchers.append(self._price_moved)

    # -- reading -----------------------------------------------------------------------------------

    def market(self, symbol: str | None) -> SpotMarketSpec:
        if not symbol:
            raise errors.mandatory("symbol")
        spec = self.markets.get(symbol)
        if spec is None:
            raise errors.invalid_symbol()
        return spec

    def last(self, symbol: str) -> Decimal:
        return self.ledger.prices[symbol].last

    def rates(self, account: Account) -> tuple[Decimal, Decimal]:
        return account.spot.commission or (self.maker_rate, self.taker_rate)

    # -- money in and out --------------------------------------------------------------------------

    def deposit(self, account: Account, asset: str, amount: Decimal) -> None:
        """Credits (or, negative, debits) an asset's free balance: a deposit or a withdrawal."""
        if decimals_of(amount) > ASSET_PRECISION:
            raise errors.illegal("amount", "8 decimals")
        balance = account.spot.balance(asset)
        if balance.free + amount < 0:
            raise insufficient_balance()
        balance.free += amount
        self._touched(account, [asset])
        self.listener.spot_balance_delta(account, asset, amount)

    def universal_transfer(
        self, from_email: str, to_email: str, amount: Decimal, asset: str, client_tran_id: str | None
    ) -> Transfer:
        """Moves an asset between spot wallets (`SPOT` → `SPOT`); a repeated `clientTranId` returns the first."""
        if client_tran_id and client_tran_id in self.transfers:
            return self.transfers[client_tran_id]
        if amount <= 0 or decimals_of(amount) > ASSET_PRECISION:
            raise errors.mandatory("amount")
        source, target = self.ledger.by_email(from_email), self.ledger.by_email(to_email)
        if source.spot.balance(asset).free < amount:
            raise errors.transfer_balance()
        source.spot.balance(asset).free -= amount
        target.spot.balance(asset).free += amount
        now = self.ledger.clock_ms()
        transfer = Transfer(
            self.ledger.next_id(), client_tran_id or "", from_email, to_email, asset, amount, now, "SPOT"
        )
        self.transfers[client_tran_id or f"_{transfer.tran_id}"] = transfer
        for account, delta in ((source, -amount), (target, amount)):
            self._touched(account, [asset])
            self.listener.spot_balance_delta(account, asset, delta)
        return transfer

    # -- orders ------------------------------------------------------------------------------------

    def place_order(self, account: Account, req: SpotOrderRequest) -> SpotOrder:
        spec = self.market(req.symbol)
        if req.side not in ("BUY", "SELL"):
            raise errors.invalid_side()
        if req.type not in ("MARKET", "LIMIT"):
            raise errors.invalid_order_type()
        last = self.last(spec.symbol)
        price, tif, quote_qty = ZERO, "GTC", ZERO
        if req.type == "LIMIT":
            price = self._check_price(spec, req.price)
            if req.time_in_force is None:
                raise errors.mandatory("timeInForce")
            if req.time_in_force not in SPOT_TIME_IN_FORCE:
                raise errors.invalid_tif()
            tif = req.time_in_force
            qty = self._check_quantity(spec, req.quantity, market=False)
        elif req.quote_order_qty is not None and req.quantity is None:
            if req.quote_order_qty <= 0 or decimals_of(req.quote_order_qty) > ASSET_PRECISION:
                raise errors.illegal("quoteOrderQty", "a positive amount of 8 decimals at most")
            quote_qty = req.quote_order_qty
            qty = (quote_qty / last / spec.step_size).to_integral_value(ROUND_DOWN) * spec.step_size
            self._check_quantity(spec, qty, market=True)
        elif req.quantity is not None and req.quote_order_qty is None:
            qty = self._check_quantity(spec, req.quantity, market=True)
        else:
            raise errors.BinanceError(-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but not both.")
        reference = price if req.type == "LIMIT" else last
        if qty * reference < spec.min_notional or qty * reference > spec.max_notional:
            raise filter_failure("NOTIONAL")
        client_id = self._check_client_id(account.spot, req.client_id)
        buying = req.side == "BUY"
        crosses = req.type == "MARKET" or (price >= last if buying else price <= last)
        pays, needs = (spec.quote, qty * (price if req.type == "LIMIT" else last)) if buying else (spec.base, qty)
        if account.spot.balance(pays).free < needs:
            raise insufficient_balance()
        now = self.ledger.clock_ms()
        order = SpotOrder(
            self.ledger.next_id(), client_id, spec.symbol, req.side, req.type, qty, price, tif, now, now, quote_qty
        )
        account.spot.orders[order.order_id] = order
        if crosses:
            self._fill(account, spec, order, qty, last, maker=False)
        elif tif in ("IOC", "FOK"):
            order.status = "EXPIRED"
            self.listener.spot_order_update(account, order, "EXPIRED", None)
        else:
            account.spot.balance(pays).free -= needs
            account.spot.balance(pays).locked += needs
            account.spot.open_orders[order.order_id] = order
            self._resting[spec.symbol][(account.name, order.order_id)] = order
            self.listener.spot_order_update(account, order, "NEW", None)
            self._touched(account, [pays])
        return order

    def _check_quantity(self, spec: SpotMarketSpec, qty: Decimal | None, market: bool) -> Decimal:
        if qty is None:
            raise errors.mandatory("quantity")
        if decimals_of(qty) > ASSET_PRECISION:
            raise too_much_precision("quantity")
        if qty <= 0:
            raise errors.illegal("quantity", "a positive amount")
        if qty < spec.min_qty or qty > spec.max_qty or qty % spec.step_size:
            raise filter_failure("LOT_SIZE")
        if market and qty > spec.market_max_qty:
            raise filter_failure("MARKET_LOT_SIZE")
        return qty

    def _check_price(self, spec: SpotMarketSpec, price: Decimal | None) -> Decimal:
        if price is None:
            raise errors.mandatory("price")
        if decimals_of(price) > ASSET_PRECISION:
            raise too_much_precision("price")
        if price <= 0:
            raise errors.illegal("price", "a positive amount")
        if price < spec.min_price or price > spec.max_price or price % spec.tick_size:
            raise filter_failure("PRICE_FILTER")
        return price

    def _check_client_id(self, wallet: SpotWallet, client_id: str | None) -> str:
        if client_id is None:
            return f"paper{self.ledger.next_id()}"
        if not CLIENT_ID_PATTERN.match(client_id):
            raise errors.illegal("newClientOrderId", "^[.A-Z:/a-z0-9_-]{1,36}$")
        if any(o.client_id == client_id for o in wallet.open_orders.values()):
            raise errors.BinanceError(-2010, "Duplicate order sent.")
        return client_id

    def _fill(
        self, account: Account, spec: SpotMarketSpec, order: SpotOrder, qty: Decimal, price: Decimal, maker: bool
    ) -> None:
        """Fills `qty` at `price`: the buyer pays the quote and receives the base less the fee in the base; the
        seller gives the base and receives the quote less the fee in the quote. A resting order's locked funds
        pay for it; a taker's come from the free balance."""
        wallet = account.spot
        maker_rate, taker_rate = self.rates(account)
        rate = maker_rate if maker else taker_rate
        cost = q8(qty * price)
        resting = order.order_id in wallet.open_orders
        if order.side == "BUY":
            fee, fee_asset = q8(qty * rate), spec.base
            paid = wallet.balance(spec.quote)
            if resting:
                paid.locked -= q8(qty * order.price)
                paid.free += q8(qty * order.price) - cost
            else:
                paid.free -= cost
            wallet.balance(spec.base).free += qty - fee
        else:
            fee, fee_asset = q8(cost * rate), spec.quote
            given = wallet.balance(spec.base)
            if resting:
                given.locked -= qty
            else:
                given.free -= qty
            wallet.balance(spec.quote).free += cost - fee
        now = self.ledger.clock_ms()
        trade = SpotTrade(
            self.ledger.next_id(), order.order_id, spec.symbol, order.side, price, qty, fee, fee_asset, maker, now
        )
        wallet.trades.append(trade)
        order.fills.append(trade)
        order.executed += qty
        order.cum_quote += cost
        order.update_ms = now
        order.status = "FILLED" if not order.remaining else "PARTIALLY_FILLED"
        if not order.is_open:
            wallet.open_orders.pop(order.order_id, None)
            self._resting[spec.symbol].pop((account.name, order.order_id), None)
        self.ledger.prices[spec.symbol].record_trade(qty, price)
        self.listener.spot_order_update(account, order, "TRADE", trade)
        self._touched(account, [spec.base, spec.quote])

    def _price_moved(self, symbol: str, last: Decimal) -> None:
        """Resting limit orders that the new last price reaches fill at their own price, as makers."""
        spec = self.markets.get(symbol)
        if spec is None:
            return
        for (name, _), order in list(self._resting[symbol].items()):
            crossed = last <= order.price if order.side == "BUY" else last >= order.price
            if crossed and order.is_open:
                self._fill(self.ledger.accounts[name], spec, order, order.remaining, order.price, maker=True)

    def find_order(self, account: Account, symbol: str, order_id: str | None, client_id: str | None) -> SpotOrder:
        spec = self.market(symbol)
        if order_id is None and client_id is None:
            raise errors.BinanceError(
                -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
            )
        order: SpotOrder | None = None
        if order_id is not None:
            order = account.spot.orders.get(int(order_id)) if order_id.isdigit() else None
        else:
            found = [o for o in account.spot.orders.values() if o.client_id == client_id]
            order = max(found, key=lambda o: o.order_id) if found else None
        if order is None or order.symbol != spec.symbol:
            raise errors.order_does_not_exist()
        return order

    def cancel_order(self, account: Account, symbol: str, order_id: str | None, client_id: str | None) -> SpotOrder:
        with errors.cancelling():
            order = self.find_order(account, symbol, order_id, client_id)
        if not order.is_open:
            raise errors.unknown_order()
        self._cancel(account, order)
        return order

    def cancel_all(self, account: Account, symbol: str) -> list[SpotOrder]:
        spec = self.market(symbol)
        orders = [o for o in account.spot.open_orders.values() if o.symbol == spec.symbol]
        for order in orders:
            self._cancel(account, order)
        return orders

    def _cancel(self, account: Account, order: SpotOrder) -> None:
        spec = self.markets[order.symbol]
        wallet = account.spot
        asset, held = (
            (spec.quote, q8(order.remaining * order.price)) if order.side == "BUY" else (spec.base, order.remaining)
        )
        wallet.balance(asset).locked -= held
        wallet.balance(asset).free += held
        order.status = "CANCELED"
        order.update_ms = self.ledger.clock_ms()
        wallet.open_orders.pop(order.order_id, None)
        self._resting[order.symbol].pop((account.name, order.order_id), None)
        self.listener.spot_order_update(account, order, "CANCELED", None)
        self._touched(account, [asset])

    def _touched(self, account: Account, assets: list[str]) -> None:
        account.spot.update_ms = self.ledger.clock_ms()
        self.listener.spot_balances(account, assets)

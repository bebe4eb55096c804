"""The paper exchange's trading engine: order checks, fills, positions, PnL, fees, funding, transfers.

Pure synchronous state changes (no I/O, no awaits), so that a burst of concurrent requests never waits
on a lock: each request's state change runs to completion on the event loop.
"""

from __future__ import annotations

import secrets
from decimal import Decimal

from bot.paper import errors
from bot.paper.accounts import (
    CLIENT_ID_PATTERN,
    TIME_IN_FORCE,
    Accounts,
    OrderRequest,
    Transfer,
    max_notional,
    triggers,
)
from bot.paper.markets import MarketSpec, decimals_of
from bot.paper.state import ZERO, Account, AlgoOrder, Income, Order, Trade, q8


class Ledger(Accounts):
    """The trading engine over the accounts: orders checked, matched and filled, algo orders triggered, prices,
    funding and transfers."""

    # -- orders -----------------------------------------------------------------------------------

    def place_order(self, account: Account, req: OrderRequest, queued: bool = False) -> Order:
        """A new order, matched at once; `queued`: accepted as NEW and matched later by `execute_queued`, as
        when Binance's matching engine is behind (the answer says NEW, a lookup shows it NEW until then)."""
        spec = self.market(req.symbol)
        if req.side not in ("BUY", "SELL"):
            raise errors.invalid_side()
        if req.type not in ("MARKET", "LIMIT"):
            if req.type in ("STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP", "TAKE_PROFIT", "TRAILING_STOP_MARKET"):
                raise errors.algo_only_type()
            raise errors.invalid_order_type()
        if (req.position_side != "BOTH") != account.dual_side:
            raise errors.position_side_mismatch()
        qty = self._check_quantity(spec, req.quantity, market=req.type == "MARKET")
        price = ZERO
        tif = ""
        if req.type == "LIMIT":
            price = self._check_price(spec, req.price)
            tif = req.time_in_force or "GTC"
            if tif not in TIME_IN_FORCE:
                raise errors.invalid_tif()
        client_id = self._check_client_id(account, req.client_id)
        pos = account.position(req.symbol)
        sign = 1 if req.side == "BUY" else -1
        if req.reduce_only and (not pos.amount or (pos.amount > 0) == (sign > 0)):
            raise errors.reduce_only_rejected()
        last = self.prices[req.symbol].last
        reference = price if req.type == "LIMIT" else last
        if not req.reduce_only and qty * reference < spec.min_notional:
            raise errors.min_notional(f"{spec.min_notional.normalize():f}")
        crosses = req.type == "MARKET" or (price >= last if sign > 0 else price <= last)
        if tif == "GTX" and crosses:
            raise errors.post_only_rejected()
        if not req.reduce_only:
            self._check_margin(account, spec, pos.amount, sign * qty, reference)
        now = self.clock_ms()
        order = Order(
            order_id=self.next_id(),
            client_id=client_id,
            symbol=req.symbol,
            side=req.side,
            type=req.type,
            orig_type=req.type,
            qty=qty,
            price=price,
            time_in_force=tif or "GTC",
            reduce_only=req.reduce_only,
            close_position=req.close_position,
            time_ms=now,
            update_ms=now,
        )
        account.orders[order.order_id] = order
        account.open_orders[order.order_id] = order
        self.listener.order_update(account, order, "NEW", None)
        if queued:
            return order
        if crosses:
            self._fill(account, order, self._fillable(account, order), last, maker=False)
            self._finish(account, order, "FILLED" if not order.remaining else "EXPIRED")
        elif tif in ("IOC", "FOK"):
            self._finish(account, order, "EXPIRED")
        else:
            self._resting[order.symbol][(account.name, order.order_id)] = order
        return order

    def execute_queued(self, account: Account, order: Order) -> None:
        """Matches a queued order now, at the last price (a MARKET order, or a LIMIT one that crosses)."""
        if order.order_id not in account.open_orders:
            return
        last = self.prices[order.symbol].last
        sign = 1 if order.side == "BUY" else -1
        if order.type == "MARKET" or (order.price >= last if sign > 0 else order.price <= last):
            self._fill(account, order, self._fillable(account, order), last, maker=False)
            self._finish(account, order, "FILLED" if not order.remaining else "EXPIRED")
        else:
            self._resting[order.symbol][(account.name, order.order_id)] = order

    def _check_quantity(self, spec: MarketSpec, qty: Decimal | None, market: bool) -> Decimal:
        if qty is None:
            raise errors.mandatory("quantity")
        if decimals_of(qty) > spec.quantity_precision:
            raise errors.precision_over_max()
        if qty <= 0:
            raise errors.qty_not_positive()
        if qty > (spec.market_max_qty if market else spec.max_qty):
            raise errors.qty_above_max()
        if qty < spec.min_qty or qty % spec.step_size:
            raise errors.qty_below_min()
        return qty

    def _check_price(self, spec: MarketSpec, price: Decimal | None) -> Decimal:
        if price is None:
            raise errors.mandatory("price")
        if decimals_of(price) > spec.price_precision:
            raise errors.precision_over_max()
        if price <= 0:
            raise errors.price_not_positive()
        if price < spec.min_price:
            raise errors.price_below_min()
        if price > spec.max_price:
            raise errors.price_above_max(f"{spec.max_price:f}")
        if price % spec.tick_size:
            raise errors.price_off_tick()
        return price

    def _check_client_id(self, account: Account, client_id: str | None) -> str:
        if client_id is None:
            return secrets.token_urlsafe(16).replace("-", "x")[:22]
        if not CLIENT_ID_PATTERN.match(client_id):
            raise errors.client_id_invalid()
        if any(o.client_id == client_id for o in account.open_orders.values()):
            raise errors.client_id_duplicated()
        return client_id

    def _check_margin(
        self, account: Account, spec: MarketSpec, amount: Decimal, delta: Decimal, price: Decimal
    ) -> None:
        opening = abs(delta) if not amount or (amount > 0) == (delta > 0) else max(ZERO, abs(delta) - abs(amount))
        if not opening:
            return
        leverage = account.leverage_of(spec.symbol)
        if abs(amount + delta) * price > max_notional(spec, leverage):
            raise errors.max_position_exceeded()
        if opening * price / leverage > self.figures(account).available:
            raise errors.margin_insufficient()

    def _fillable(self, account: Account, order: Order) -> Decimal:
        """How much of the order can fill now: a reduce-only order never grows or flips the position."""
        if not order.reduce_only:
            return order.remaining
        amount = account.position(order.symbol).amount
        if not amount or (amount > 0) == (order.signed_side > 0):
            return ZERO
        return min(order.remaining, abs(amount))

    def _fill(self, account: Account, order: Order, qty: Decimal, price: Decimal, maker: bool) -> None:
        if not qty:
            return
        now = self.clock_ms()
        pos = account.position(order.symbol)
        delta = order.signed_side * qty
        realized = ZERO
        if not pos.amount or (pos.amount > 0) == (delta > 0):
            pos.entry_price = q8((abs(pos.amount) * pos.entry_price + qty * price) / (abs(pos.amount) + qty))
        else:
            closing = min(qty, abs(pos.amount))
            direction = 1 if pos.amount > 0 else -1
            realized = q8(closing * (price - pos.entry_price) * direction)
            if qty > abs(pos.amount):
                pos.entry_price = price
            elif qty == abs(pos.amount):
                pos.entry_price = ZERO
        pos.amount += delta
        pos.update_ms = now
        maker_rate, taker_rate = self.rates(account)
        commission = q8(qty * price * (maker_rate if maker else taker_rate))
        account.wallet += realized - commission
        order.executed += qty
        order.cum_quote += qty * price
        order.update_ms = now
        order.status = "PARTIALLY_FILLED" if order.remaining else "FILLED"
        trade = Trade(
            self.next_id(), order.order_id, order.symbol, order.side, price, qty, realized, commission, maker, now
        )
        account.trades.append(trade)
        if realized:
            self._income(account, order.symbol, "REALIZED_PNL", realized, str(trade.trade_id))
        self._income(account, order.symbol, "COMMISSION", -commission, str(trade.trade_id))
        self.prices[order.symbol].record_trade(qty, price)
        if not order.remaining:
            self._drop_open(account, order)
        self.listener.order_update(account, order, "TRADE", trade)
        self.listener.account_update(account, "ORDER", [order.symbol])

    def _income(self, account: Account, symbol: str, kind: str, amount: Decimal, trade_id: str = "") -> None:
        account.income.append(Income(self.next_id(), symbol, kind, amount, kind, self.clock_ms(), trade_id))

    def _drop_open(self, account: Account, order: Order) -> None:
        account.open_orders.pop(order.order_id, None)
        self._resting[order.symbol].pop((account.name, order.order_id), None)

    def _finish(self, account: Account, order: Order, status: str) -> None:
        """Closes an order: FILLED after its last fill, or CANCELED / EXPIRED with its rest."""
        if order.status == "FILLED":
            return
        order.status = status
        order.update_ms = self.clock_ms()
        self._drop_open(account, order)
        self.listener.order_update(account, order, "CANCELED" if status == "CANCELED" else "EXPIRED", None)

    def find_order(self, account: Account, symbol: str, order_id: str | None, client_id: str | None) -> Order:
        self.market(symbol)
        if order_id is None and client_id is None:
            raise errors.mandatory("orderId")
        order: Order | None = None
        if order_id is not None:
            order = account.orders.get(int(order_id)) if order_id.isdigit() else None
        else:
            assert client_id is not None
            order = account.latest_order_by_client_id(client_id)
        if order is None or order.symbol != symbol:
            raise errors.order_does_not_exist()
        return order

    def cancel_order(self, account: Account, symbol: str, order_id: str | None, client_id: str | None) -> Order:
        with errors.cancelling():
            order = self.find_order(account, symbol, order_id, client_id)
        if not order.is_open:
            raise errors.unknown_order()
        self._finish(account, order, "CANCELED")
        return order

    def cancel_all(self, account: Account, symbol: str) -> None:
        self.market(symbol)
        for order in [o for o in account.open_orders.values() if o.symbol == symbol]:
            self._finish(account, order, "CANCELED")

    # -- conditional (algo) orders ---------------------------------------------------------------

    def place_algo(self, account: Account, req: OrderRequest) -> AlgoOrder:
        spec = self.market(req.symbol)
        if req.side not in ("BUY", "SELL"):
            raise errors.invalid_side()
        if req.type not in ("STOP_MARKET", "TAKE_PROFIT_MARKET"):
            raise errors.invalid_order_type()
        if req.trigger_price is None:
            raise errors.stop_price_missing()
        trigger = self._check_price(spec, req.trigger_price)
        qty = ZERO if req.close_position else self._check_quantity(spec, req.quantity, market=True)
        client_id = self._check_client_id(account, req.client_id)
        if triggers(req.type, req.side, trigger, self._trigger_price(req.symbol, req.working_type)):
            raise errors.would_trigger_immediately()
        now = self.clock_ms()
        algo = AlgoOrder(
            algo_id=self.next_id(),
            client_algo_id=client_id,
            order_type=req.type,
            symbol=req.symbol,
            side=req.side,
            qty=qty,
            trigger_price=trigger,
            working_type=req.working_type,
            reduce_only=req.reduce_only or req.close_position,
            close_position=req.close_position,
            create_ms=now,
            update_ms=now,
        )
        account.algo_orders[algo.algo_id] = algo
        self._algos[req.symbol][(account.name, algo.algo_id)] = algo
        return algo

    def find_algo(self, account: Account, algo_id: str | None, client_id: str | None) -> AlgoOrder:
        found: AlgoOrder | None = None
        if algo_id is not None and algo_id.isdigit():
            found = account.algo_orders.get(int(algo_id))
        elif client_id is not None:
            found = next((a for a in account.algo_orders.values() if a.client_algo_id == client_id), None)
        elif algo_id is None:
            raise errors.mandatory("algoId")
        if found is None:
            raise errors.order_does_not_exist()
        return found

    def cancel_algo(self, account: Account, algo: AlgoOrder) -> None:
        if not algo.is_open:
            raise errors.unknown_order()
        algo.status = "CANCELED"
        algo.update_ms = self.clock_ms()
        self._algos[algo.symbol].pop((account.name, algo.algo_id), None)

    def _trigger_price(self, symbol: str, working_type: str) -> Decimal:
        state = self.prices[symbol]
        return state.mark if working_type == "MARK_PRICE" else state.last

    def _trigger(self, account: Account, algo: AlgoOrder) -> None:
        self._algos[algo.symbol].pop((account.name, algo.algo_id), None)
        now = self.clock_ms()
        algo.trigger_ms = algo.update_ms = now
        qty = algo.qty
        if algo.close_position:
            qty = abs(account.position(algo.symbol).amount)
        try:
            if not qty:
                raise errors.reduce_only_rejected()
            order = self.place_order(
                account,
                OrderRequest(algo.symbol, algo.side, "MARKET", qty, reduce_only=algo.reduce_only, client_id=None),
            )
        except errors.BinanceError:
            algo.status = "EXPIRED"
            return
        algo.actual_order_id = order.order_id
        algo.status = "FINISHED"

    # -- prices, funding and transfers ------------------------------------------------------------

    def set_price(self, symbol: str, last: Decimal, mark: Decimal | None = None) -> None:
        self.market(symbol)
        self.prices[symbol].move_to(last, mark if mark is not None else last)
        for watcher in self.price_watchers:
            watcher(symbol, last)
        for (name, _), order in list(self._resting[symbol].items()):
            crossed = last <= order.price if order.side == "BUY" else last >= order.price
            if crossed and order.is_open:
                account = self.accounts[name]
                self._fill(account, order, self._fillable(account, order), order.price, maker=True)
                if order.remaining:
                    self._finish(account, order, "EXPIRED")
        for (name, _), algo in list(self._algos[symbol].items()):
            if algo.is_open and triggers(
                algo.order_type, algo.side, algo.trigger_price, self._trigger_price(symbol, algo.working_type)
            ):
                self._trigger(self.accounts[name], algo)

    def next_funding_ms(self, now_ms: int) -> int:
        """The next funding time (what premiumIndex and the mark-price stream advertise)."""
        return (now_ms // self.funding_interval_ms + 1) * self.funding_interval_ms

    def apply_funding(self, rate: Decimal | None = None, symbol: str | None = None) -> int:
        """Settles one funding event: longs pay shorts when the rate is positive. Returns payments made."""
        paid = 0
        for account in self.accounts.values():
            touched = []
            for pos in account.positions.values():
                if not pos.amount or (symbol is not None and pos.symbol != symbol):
                    continue
                state = self.prices[pos.symbol]
                amount = q8(-pos.amount * state.mark * (rate if rate is not None else state.funding_rate))
                account.wallet += amount
                self._income(account, pos.symbol, "FUNDING_FEE", amount)
                touched.append(pos.symbol)
                paid += 1
            if touched:
                self.listener.account_update(account, "FUNDING_FEE", touched)
        return paid

    def deposit(self, account: Account, amount: Decimal) -> None:
        if account.wallet + amount < 0 or (amount < 0 and -amount > self.figures(account).max_withdraw):
            raise errors.transfer_balance()
        account.wallet += amount
        self._income(account, "", "TRANSFER", amount)
        self.listener.account_update(account, "DEPOSIT" if amount > 0 else "WITHDRAW", [])

    def universal_transfer(
        self, from_email: str, to_email: str, amount: Decimal, asset: str, client_tran_id: str | None
    ) -> Transfer:
        """Moves USDT between futures wallets; a repeated `clientTranId` returns the first transfer."""
        if client_tran_id and client_tran_id in self.transfers:
            return self.transfers[client_tran_id]
        if asset != "USDT":
            raise errors.BinanceError(-1100, "Illegal characters found in parameter 'asset'.")
        if amount <= 0:
            raise errors.BinanceError(-1102, "Mandatory parameter 'amount' was not sent, was empty/null, or malformed.")
        source, target = self.by_email(from_email), self.by_email(to_email)
        if amount > self.figures(source).max_withdraw:
            raise errors.transfer_balance()
        source.wallet -= amount
        target.wallet += amount
        self._income(source, "", "TRANSFER", -amount)
        self._income(target, "", "TRANSFER", amount)
        transfer = Transfer(self.next_id(), client_tran_id or "", from_email, to_email, asset, amount, self.clock_ms())
        if client_tran_id:
            self.transfers[client_tran_id] = transfer
        else:
            self.transfers[f"_{transfer.tran_id}"] = transfer
        self.listener.account_update(source, "TRANSFER", [])
        self.listener.account_update(target, "TRANSFER", [])
        return transfer

"""Reconciliation (SPEC 5): a follower's account against what its own fills add up to; differences are manual
intervention, logged and undone. Orders the bot did not place, conditional ones included, are cancelled."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bot.core.model import ZERO, Plan, PlanKind
from bot.core.sync import plan_correction, reconcile_target
from bot.engine.orders import FollowerPart
from bot.venue.ccxt_venue import AccountSnapshot, AccountVenue


async def cancel_orders(
    venue: AccountVenue, log: Any, keep_prefix: str | None, symbols: Iterable[str] | None = None, algos: bool = True
) -> int:
    """Cancels the account's open orders but those whose client id starts with `keep_prefix` (the bot's own;
    None: cancels all), and every conditional (algo) order: the bot never places one. With `symbols`, looks
    symbol by symbol (weight 1 each) instead of listing everything (weight 40); `algos=False` leaves the
    algo listing out (it is only per symbol then). Returns how many it cancelled."""
    cancelled = 0
    listed = [None] if symbols is None else sorted(symbols)
    for symbol in listed:
        for market_id, order_id, cid in await venue.open_orders(symbol):
            if keep_prefix is not None and cid.startswith(keep_prefix):
                continue
            if keep_prefix is not None:
                log.warning(
                    "manual_intervention_detected", symbol=market_id, kind="foreign_open_order", order_id=order_id
                )
            await venue.cancel(market_id, order_id)
            cancelled += 1
    for symbol in [None] if algos else listed:
        for market_id, algo_id, _ in await venue.open_algo_orders(symbol):
            log.warning("manual_intervention_detected", symbol=market_id, kind="conditional_order", algo_id=algo_id)
            await venue.cancel_algo(algo_id)
            cancelled += 1
    return cancelled


class Reconciler(FollowerPart):
    async def reconcile(self, account: AccountSnapshot) -> int:
        """The exchange (`account`: read with no order of ours unresolved) against what our own fills add up to.
        Returns the corrections made."""
        actual = account.positions
        expected = self.store.follower_positions(self.name)
        lead = self.store.lead_positions()
        row = self.store.follower(self.name)
        caught_up = row is not None and row.last_seq >= self.store.last_seq()
        # open orders symbol by symbol where the account has anything (position risk lists those) or should
        watched = (account.symbols | set(expected)) & set(self.markets)
        prefix = f"cb-{self.store.epoch}-"
        corrections = await cancel_orders(self.venue, self.log, prefix, watched, algos=False)
        seq = self.clock.now_ms()
        for symbol in sorted(set(actual) | set(expected)):
            if symbol not in self.markets:
                continue
            target = reconcile_target(expected.get(symbol, ZERO), symbol in lead, caught_up)
            have = actual.get(symbol, ZERO)
            if have == target and target == expected.get(symbol, ZERO):
                continue
            if have != target:
                self.log.warning(
                    "manual_intervention_detected", symbol=symbol, kind="position", expected=target, actual=have
                )
                intents = plan_correction(symbol, target, have, self.markets[symbol])
                if intents:
                    await self.orders.journal_plan(PlanKind.RECONCILE, seq, Plan(intents=intents))
                    await self.orders.execute(PlanKind.RECONCILE, seq)
            self.store.set_follower_position(self.name, symbol, target)
            corrections += 1
            seq += 1
        self.log.info(
            "reconcile_completed",
            corrections=corrections,
            positions={s: str(q) for s, q in self.store.follower_positions(self.name).items()},
        )
        return corrections

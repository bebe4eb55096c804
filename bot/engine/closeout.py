"""Close-outs (stop loss, removal, the lead gone): a follower is `closing` until its account is flat, and only
then `stopped_loss` or `ended`. Each step reads the account and closes what is there, so a rejected or lost
close is simply tried again, and a restart resumes where the last step left off."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.core.model import Intent, Leg, Market, Plan
from bot.engine.orders import END, STOP, FollowerPart, OrderSender
from bot.engine.reconcile import cancel_orders


class CloseOut(FollowerPart):
    def __init__(self, orders: OrderSender, markets: Mapping[str, Market]) -> None:
        super().__init__(orders, markets)
        self.rounds = 0

    def begin(self, final_state: str, reason: str) -> None:
        """Durably: copying stops, every unfinished intent is abandoned (never sent), the follower is closing."""
        self.orders.opens_halted = True
        abandoned = self.store.begin_close_out(self.name, final_state, reason, self.clock.now_ms())
        self.rounds = 0
        self.log.warning(
            "follower_closing",
            final_state=final_state,
            reason=reason,
            abandoned=[r.client_order_id for r in abandoned],
        )

    async def _positions(self) -> dict[str, Any]:
        return {s: q for s, (q, _) in (await self.venue.positions()).items() if s in self.markets}

    async def step(self) -> bool:
        """One round: finish this close-out's orders, cancel every open order, close what the account holds,
        and read it again. True once it is flat: the follower then takes its final state."""
        row = self.store.follower(self.name)
        if row is None or row.state != "closing":
            return True
        self.rounds += 1
        await self.orders.resolve_unfinished()
        await cancel_orders(self.venue, self.log, None)
        held = await self._positions()
        if held:
            kind = STOP if row.closing_to == "stopped_loss" else END
            seq = self.clock.now_ms()
            closes = tuple(
                Intent(Leg.CLOSE, s, "sell" if q > 0 else "buy", abs(q), reduce_only=True)
                for s, q in sorted(held.items())
            )
            await self.orders.journal_plan(kind, seq, Plan(intents=closes))
            await self.orders.execute(kind, seq)
            held = await self._positions()
        if held:
            self.log.warning(
                "follower_close_retry",
                round=self.rounds,
                final_state=row.closing_to,
                remaining={s: str(q) for s, q in held.items()},
            )
            return False
        final = self.store.finish_close_out(self.name, await self.venue.equity(), self.clock.now_ms())
        self.log.info(
            "follower_ended" if final.state == "ended" else "follower_stopped",
            state=final.state,
            reason=final.state_reason,
            rounds=self.rounds,
        )
        return True

"""Close-outs (stop loss, removal, the lead gone): a follower is `closing` until its account is flat, and only
then `stopped_loss` or `ended`. Each step reads the account and closes what is there, so a rejected or lost
close is simply tried again, and a restart resumes where the last step left off."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from bot.core.model import FollowerState, Intent, Leg, Market, Plan, PlanKind
from bot.engine.orders import FollowerPart, OrderSender
from bot.engine.reconcile import cancel_orders
from bot.venue.ccxt_venue import AccountSnapshot


class CloseOut(FollowerPart):
    def __init__(self, orders: OrderSender, markets: Mapping[str, Market]) -> None:
        super().__init__(orders, markets)
        self.rounds = 0
        self._at_once = False  # begun in this process: the first round closes before it reads
        self._seq = 0

    def begin(self, final_state: FollowerState, reason: str) -> None:
        """Durably: copying stops, every unfinished intent is abandoned (never sent), the follower is closing."""
        self.orders.opens_halted = True
        abandoned = self.store.begin_close_out(self.name, final_state, reason, self.clock.now_ms())
        self.rounds = 0
        self._at_once = True
        self.log.warning(
            "follower_closing",
            final_state=final_state,
            reason=reason,
            abandoned=[r.client_order_id for r in abandoned],
        )

    async def _close(self, final_state: FollowerState, held: Mapping[str, Decimal]) -> None:
        """Reduce-only market orders for `held` (what is more than the account holds is refused, never opened)."""
        if not held:
            return
        kind = PlanKind.STOP if final_state == FollowerState.STOPPED_LOSS else PlanKind.END
        self._seq = seq = max(self.clock.now_ms(), self._seq + 1)
        closes = tuple(
            Intent(Leg.CLOSE, s, "sell" if q > 0 else "buy", abs(q), reduce_only=True) for s, q in sorted(held.items())
        )
        await self.orders.journal_plan(kind, seq, Plan(intents=closes))
        await self.orders.execute(kind, seq)

    def _held(self, account: AccountSnapshot) -> dict[str, Decimal]:
        """What the account holds in the markets the bot knows."""
        return {s: q for s, q in account.positions.items() if s in self.markets}

    async def step(self) -> bool:
        """One round: finish this close-out's orders, read the account, cancel every open order where it has
        anything, close what it holds, and read it again. True once it is flat: the follower then takes its
        final state. The first round of a close-out begun here sends the closes of what the follower's own
        fills add up to before anything is read (SPEC 12: a stop loss's orders go out at once, never behind
        reads in the request budget); the reads that follow confirm, and the next rounds finish the rest."""
        row = self.store.follower(self.name)
        if row is None or row.state != FollowerState.CLOSING:
            return True
        assert row.closing_to is not None, "a closing follower knows the state it closes to"
        self.rounds += 1
        await self.orders.resolve_unfinished()
        if self._at_once:
            self._at_once = False
            await self._close(row.closing_to, self.store.follower_positions(self.name))
        account = await self.venue.account()
        # open and conditional orders symbol by symbol (weight 1 each) where the account or the bot has anything
        watched = (account.symbols | set(self.store.follower_positions(self.name))) & set(self.markets)
        if await cancel_orders(self.venue, self.log, None, watched, algos=False):
            account = await self.venue.account()  # an order may have filled before it was cancelled
        held = self._held(account)
        if held:
            await self._close(row.closing_to, held)
            account = await self.venue.account()
            held = self._held(account)
        if held:
            return self._retry(row.closing_to, held)
        return self._finish(account.equity)

    def _retry(self, final_state: FollowerState, remaining: Mapping[str, Decimal]) -> bool:
        """A round that left something open: logged, the next round tries again. False: not flat yet."""
        self.log.warning(
            "follower_close_retry",
            round=self.rounds,
            final_state=final_state,
            remaining={s: str(q) for s, q in remaining.items()},
        )
        return False

    def _finish(self, account_equity: Decimal) -> bool:
        """Flat: the follower takes its final state, its episode ending at `account_equity` (less the reserve)."""
        final = self.store.finish_close_out(self.name, account_equity, self.clock.now_ms())
        self.log.info(
            "follower_ended" if final.state == FollowerState.ENDED else "follower_stopped",
            state=final.state,
            reason=final.state_reason,
            rounds=self.rounds,
        )
        return True

"""One follower's worker: its loop of steps (copy what it has not, reconcile when due, close out when asked),
woken by lead changes and marks, backing off on failures, never holding up another follower."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial

from bot.core.model import FollowerState
from bot.engine.clock import Clock
from bot.engine.mirror import FollowerMirror
from bot.engine.orders import OpensHalted
from bot.engine.periodic import pause
from bot.store.db import Store
from bot.venue.budget import Priority
from bot.venue.errors import Fatal, VenueError


class _NotFlat(Exception):
    """A close-out step left the account holding positions: the worker backs off and tries again."""


class Worker:
    def __init__(
        self,
        mirror: FollowerMirror,
        store: Store,
        wake: asyncio.Event,
        clock: Clock,
        stopping: asyncio.Event,
        poll_interval_s: float,
        reconcile_interval_s: Callable[[], float],
        reconcile_weight: int,
    ) -> None:
        self.mirror = mirror
        self.store = store
        self.wake = wake
        self.clock = clock
        self.stopping = stopping
        self.poll_interval_s = poll_interval_s
        self.reconcile_interval_s = reconcile_interval_s  # the budget's pace: a reload may change it
        self.reconcile_weight = reconcile_weight

    async def run(self, first_reconcile_ms: int) -> None:
        """Until the daemon stops, or the follower is removed and flat. `first_reconcile_ms`: when its first
        reconciliation pass is due (spread at start over what the budget gives them, then every interval)."""
        mirror, wake = self.mirror, self.wake
        next_reconcile = first_reconcile_ms
        backoff = 1.0
        while not self.stopping.is_set():
            wake.clear()
            if not mirror.claim():  # a fan-out has it: the next wake, or the poll interval, comes back
                await pause(wake, self.poll_interval_s)
                continue
            try:
                try:
                    reconciled = await mirror.step(self.stopping, partial(self._reconcile_due, next_reconcile))
                finally:
                    mirror.unclaim()
                if reconciled:
                    next_reconcile = self.clock.now_ms() + int(self.reconcile_interval_s() * 1000)
                row = self.store.follower(mirror.name)
                if row is not None and row.state == FollowerState.ENDED and mirror.end_request is not None:
                    return  # removed from the configuration and flat: this worker is done
                if row is not None and row.state == FollowerState.CLOSING:
                    raise _NotFlat
                backoff = 1.0
            except OpensHalted:
                continue  # a close-out was requested mid-way: it starts at once
            except (VenueError, _NotFlat) as exc:
                if isinstance(exc, VenueError):
                    event = "follower_account_failed" if isinstance(exc, Fatal) else "follower_sync_failed"
                    mirror.log.error(event, error=str(exc))
                await pause(self.stopping, backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            await pause(wake, self.poll_interval_s)

    def _reconcile_due(self, next_reconcile: int) -> bool:
        """A reconciliation pass is due and the budget has room for it now: a pass that would wait in the
        budget's queue waits for the next step instead (it may hold up a copy)."""
        budget = self.mirror.venue.budget
        return self.clock.now_ms() >= next_reconcile and (
            budget is None or budget.has_room(self.reconcile_weight, Priority.FOLLOWER)
        )


async def close_until_flat(mirror: FollowerMirror, stopping: asyncio.Event) -> None:
    """A close-out retried with backoff until the account is flat (or the daemon stops: a restart resumes)."""
    backoff = 0.5
    while not stopping.is_set():
        try:
            if await mirror.closeout.step():
                return
        except VenueError as exc:
            mirror.log.error("follower_close_failed", error=str(exc))
        await pause(stopping, backoff)
        backoff = min(backoff * 2, 30.0)

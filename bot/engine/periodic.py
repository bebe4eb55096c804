"""The daemon's periodic side jobs, each a task of its own: the heartbeat, the settlement loop and the background
reads of followers' commission rates."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Collection
from decimal import Decimal
from typing import Any

from bot.core.model import FollowerState
from bot.engine.clock import Clock
from bot.engine.lead import LeadPoller
from bot.engine.mirror import FollowerMirror
from bot.engine.settle import Settler
from bot.store.db import Store
from bot.venue.budget import Budgets, Priority
from bot.venue.errors import Fatal, VenueError


async def pause(until: asyncio.Event, seconds: float) -> None:
    """`seconds`, or less when `until` is set meanwhile (the daemon's stop, a worker's wake, a poll)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(until.wait(), timeout=seconds)


async def settle_loop(settler: Settler, stopping: asyncio.Event, interval_s: float, log: Any) -> None:
    """Settles each cycle as soon as it ends (and, at start, every cycle missed while down, oldest first),
    and sends pending transfers as their back-off allows."""
    while not stopping.is_set():
        try:
            await settler.run_due()
        except (VenueError, OSError) as exc:
            log.error("settlement_failed", error=str(exc))
        await pause(stopping, interval_s)


async def commission_rates(
    followers: Callable[[], list[FollowerMirror]], market: str, assumed: Decimal, stopping: asyncio.Event
) -> None:
    """Each follower's own taker rate, read once in the background at the budget's lowest priority (weight
    20 each, only while a minute is less than half used, so never in the way of anything else): until then
    its fills are estimated at the lead's rate (`assumed`), and the true-ups correct the difference.
    `followers`: the configured ones, in order (a reload adds some)."""
    read: set[str] = set()
    while not stopping.is_set():
        pending = [m for m in followers() if m.name not in read]
        if not pending:
            await pause(stopping, 30)  # followers added by a reload
            continue
        mirror = pending[0]
        try:
            rate = await mirror.venue.taker_rate(market, Priority.BACKGROUND)
            mirror.config.taker_rate = rate
            read.add(mirror.name)
            mirror.log.info("commission_rate_read", taker_rate=rate, assumed_before=assumed)
        except Fatal:
            read.add(mirror.name)  # its key is gone: its worker says so; the lead's rate stays assumed
        except VenueError as exc:
            mirror.log.warning("commission_rate_unread", error=str(exc), retry_in_s=30)
            await pause(stopping, 30)


async def heartbeat(
    store: Store,
    poller: LeadPoller,
    budgets: Budgets,
    managed: Callable[[], Collection[str]],
    reconcile_interval_s: Callable[[], float],
    clock: Clock,
    interval_s: float,
    stopping: asyncio.Event,
    log: Any,
) -> None:
    """Every `interval_s`: the lead's progress, each managed follower's lag and state, the request weight used,
    and the reconciliation interval in force, logged (`heartbeat`) and kept for `bot status`."""
    while not stopping.is_set():
        await pause(stopping, interval_s)
        if stopping.is_set():
            return
        last = store.last_seq()
        names = managed()
        rows = [r for r in store.followers() if r.name in names]
        lag = {r.name: last - r.last_seq for r in rows if r.state == FollowerState.ACTIVE}
        interval = reconcile_interval_s()
        log.info(
            "heartbeat",
            last_lead_change=last,
            lead_polls=poller.polls,
            last_poll_age_ms=clock.now_ms() - poller.last_poll_ms if poller.last_poll_ms else -1,
            follower_lag=lag,
            max_lag=max(lag.values(), default=0),
            states={r.name: r.state for r in rows},
            request_weight=budgets.summary(),
            reconcile_interval_s=round(interval, 1),
        )
        store.set_meta("request_weight", json.dumps(budgets.summary()))
        store.set_meta("reconcile_interval_s", f"{interval:.1f}")

"""`bot settle`: settles due cycles once (idempotent), retries failed transfers on request, and rewrites
reports from the store."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime

from bot import logs
from bot.core.cycles import parse_cycle_id
from bot.engine.clock import SystemClock
from bot.engine.kinds import KINDS
from bot.engine.settle import Settler
from bot.settings import Settings
from bot.store.db import Store
from bot.store.state_dir import lock_state, open_state
from bot.venue.budget import Budgets, Priority
from bot.venue.ccxt_venue import AccountVenue, build_client, host_of
from bot.venue.errors import VenueError

EXIT_BAD_CYCLE = 2


async def settle_command(settings: Settings, cycle_id: str | None, retry: bool = False) -> int:
    clock = SystemClock()
    wanted = None
    if cycle_id is not None:
        try:
            from zoneinfo import ZoneInfo

            wanted = parse_cycle_id(cycle_id, ZoneInfo(settings.settlement.timezone), settings.settlement.cycle_seconds)
        except ValueError:
            print(f"bot settle: {cycle_id!r} is not a cycle id (like 2026-W47)", file=sys.stderr)
            return EXIT_BAD_CYCLE
        now = datetime.fromtimestamp(clock.now_ms() / 1000, UTC)
        if wanted.end > now:
            print(f"bot settle: cycle {wanted.id} is not over until {wanted.end.isoformat()}", file=sys.stderr)
            return EXIT_BAD_CYCLE
    lock = lock_state(settings.bot.state_dir)
    store = open_state(settings.bot.state_dir)
    try:
        if lock is None:
            print("the daemon is running with this state and settles on its own; rewriting reports from the store")
        else:
            await _settle_due(settings, store, clock, wanted.end_ms if wanted else None, retry)
        settler = Settler(settings, store, {}, clock, logs.get())
        settled = store.settlement.settled_cycles()
        for cycle in sorted(settled):
            if wanted is None or cycle == wanted.id:
                print(f"{cycle}: {settler.write(cycle) / 'settlement.md'}")
        if wanted is not None and wanted.id not in settled:
            print(f"bot settle: no settlement for {wanted.id} (nobody was copying then)", file=sys.stderr)
        return 0
    finally:
        store.close()
        if lock is not None:
            lock.close()


async def _settle_due(settings: Settings, store: Store, clock: SystemClock, until_ms: int | None, retry: bool) -> None:
    accounts = [*settings.accounts(), *([settings.treasury] if settings.treasury else [])]
    budgets = Budgets(settings.bot.max_weight_share, logs.get())
    kind = KINDS[settings.bot.market]
    venues: dict[str, AccountVenue] = {}
    for account in accounts:
        client = build_client(account, settings.bot.request_timeout_ms)
        budget = budgets.for_host(host_of(client))
        venues[account.name] = kind.venue(account.name, client, budget=budget, priority=Priority.SETTLEMENT)
    try:
        first = next(iter(venues.values()), None)
        for venue in venues.values():  # spot values holdings by market: one exchangeInfo read, shared
            await venue.load_markets(first if venue is not first else None)
        settler = Settler(
            settings, store, venues, clock, logs.get(), lambda venue, name: kind.settlement_equity(venue, store, name)
        )
        if retry:
            count = store.settlement.retry_failed(clock.now_ms())
            print(f"{count} failed transfer(s) to try again")
        due = [c for c in settler.due() if until_ms is None or c.end_ms <= until_ms]
        for cycle in due:
            await settler.settle_cycle(cycle)
        await settler.send_transfers()
        settler.complete()
    except VenueError as exc:
        logs.get().error("settlement_failed", error=str(exc))
    finally:
        await asyncio.gather(*(v.close() for v in venues.values()), return_exceptions=True)

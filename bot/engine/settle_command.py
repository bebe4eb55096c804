"""`bot settle`: settles due cycles once (idempotent) and rewrites reports from the store."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from bot import logs
from bot.core.cycles import parse_cycle_id
from bot.engine.clock import SystemClock
from bot.engine.runtime import lock_state, state_db
from bot.engine.settle import Settler
from bot.reports.settlement import write_reports
from bot.settings import Settings
from bot.store.db import Store
from bot.venue.ccxt_venue import AccountVenue, build_client
from bot.venue.errors import VenueError

EXIT_BAD_CYCLE = 2


async def settle_command(settings: Settings, cycle_id: str | None) -> int:
    zone = ZoneInfo(settings.settlement.timezone)
    wanted = None
    if cycle_id is not None:
        try:
            wanted = parse_cycle_id(cycle_id, zone, settings.settlement.cycle_seconds)
        except ValueError:
            print(f"bot settle: {cycle_id!r} is not a cycle id (like 2026-W47)", file=sys.stderr)
            return EXIT_BAD_CYCLE
        if wanted.end > datetime.now(UTC):
            print(f"bot settle: cycle {wanted.id} is not over until {wanted.end.isoformat()}", file=sys.stderr)
            return EXIT_BAD_CYCLE
    lock = lock_state(settings)
    store = state_db(settings)
    try:
        if lock is None:
            print("the daemon is running with this state and settles on its own; rewriting reports from the store")
        else:
            await _settle_due(settings, store, wanted.end_ms if wanted else None)
        settled = store.settled_cycles()
        for cycle in sorted(settled):
            if wanted is None or cycle == wanted.id:
                parsed = parse_cycle_id(cycle, zone, settings.settlement.cycle_seconds)
                directory = write_reports(
                    store, settings.bot.state_dir, cycle, parsed.start_ms, parsed.end_ms, settings.settlement.timezone
                )
                print(f"{cycle}: {directory / 'settlement.md'}")
        if wanted is not None and wanted.id not in settled:
            print(f"bot settle: no settlement for {wanted.id} (nobody was copying then)", file=sys.stderr)
        return 0
    finally:
        store.close()
        if lock is not None:
            lock.close()


async def _settle_due(settings: Settings, store: Store, until_ms: int | None) -> None:
    accounts = [*settings.accounts(), *([settings.treasury] if settings.treasury else [])]
    venues = {a.name: AccountVenue(a.name, build_client(a, settings.bot.request_timeout_ms)) for a in accounts}
    try:
        settler = Settler(settings, store, venues, SystemClock(), logs.get())
        for cycle in settler.due():
            if until_ms is None or cycle.end_ms <= until_ms:
                await settler.settle_cycle(cycle)
        await settler.send_transfers()
    except VenueError as exc:
        logs.get().error("settlement_failed", error=str(exc))
    finally:
        await asyncio.gather(*(v.close() for v in venues.values()), return_exceptions=True)

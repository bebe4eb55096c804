"""Settlement cycles: natural weeks, Monday 00:00 to Monday 00:00 in a time zone, named by ISO week. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class Cycle:
    id: str  # "2026-W47", or "S<seconds>-<n>" for the short cycles of tests and the demo
    start: datetime  # aware, UTC
    end: datetime

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return int(self.end.timestamp() * 1000)


def week_of(instant: datetime, zone: ZoneInfo) -> Cycle:
    """The natural week holding `instant`: local Monday 00:00 to the next local Monday 00:00.

    Local midnights are resolved by the zone's rules, so a week across a DST change lasts 167 or 169 hours.
    """
    local_day = instant.astimezone(zone).date()
    monday = local_day - timedelta(days=local_day.weekday())
    start = datetime.combine(monday, time(0), tzinfo=zone)
    end = datetime.combine(monday + timedelta(days=7), time(0), tzinfo=zone)
    year, week, _ = monday.isocalendar()
    return Cycle(f"{year}-W{week:02d}", start.astimezone(UTC), end.astimezone(UTC))


def short_cycle_of(instant: datetime, seconds: int) -> Cycle:
    index = int(instant.timestamp()) // seconds
    start = datetime.fromtimestamp(index * seconds, UTC)
    return Cycle(f"S{seconds}-{index}", start, start + timedelta(seconds=seconds))


def cycle_of(instant: datetime, zone: ZoneInfo, cycle_seconds: int | None = None) -> Cycle:
    return short_cycle_of(instant, cycle_seconds) if cycle_seconds else week_of(instant, zone)


def completed_cycles(since: datetime, now: datetime, zone: ZoneInfo, cycle_seconds: int | None = None) -> list[Cycle]:
    """Every cycle that holds or follows `since` and has ended by `now`, oldest first."""
    out = []
    cycle = cycle_of(since, zone, cycle_seconds)
    while cycle.end <= now:
        out.append(cycle)
        cycle = cycle_of(cycle.end, zone, cycle_seconds)
    return out


def parse_cycle_id(cycle_id: str, zone: ZoneInfo, cycle_seconds: int | None = None) -> Cycle:
    """The cycle a report names (`2026-W47`); raises ValueError for anything else."""
    if cycle_id.startswith("S"):
        seconds, index = (int(part) for part in cycle_id[1:].split("-"))
        if seconds <= 0 or index < 0:
            raise ValueError(f"{cycle_id!r}: a short cycle has a positive length and a non-negative index")
        return short_cycle_of(datetime.fromtimestamp(index * seconds, UTC), seconds)
    year, week = cycle_id.split("-W")
    monday = datetime.fromisocalendar(int(year), int(week), 1).date()
    return week_of(datetime.combine(monday, time(12), tzinfo=zone), zone)

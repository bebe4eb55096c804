"""One request budget per exchange host (SPEC 12): every account's client draws on it, since exchanges limit
request weight per IP, not per key. It knows each request's weight before sending, follows the server's
used-weight header, keeps the daemon at or below its share of the limit, and serves in priority order."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

MINUTE_S = 60.0
BURST_S = 10.0  # reads are paced over the minute, with this much of it available at once


class Priority(IntEnum):
    ORDER = 0  # new orders, cancels, leverage, lookups of unknown outcomes: never held back by reads
    LEAD = 1  # the lead's reads
    FOLLOWER = 2  # followers' true-ups and reconciliation
    SETTLEMENT = 3  # settlement records
    BACKGROUND = 4  # what only improves an estimate (each follower's commission rate): when nothing else needs it


# the most of the daemon's allowance each priority may use in a minute: the rest is there for the others, so
# that a greedy lead poll never starves followers' reconciliation (nor they the lead). Orders are not capped.
CEILING = {
    Priority.ORDER: 1.0,
    Priority.LEAD: 0.65,
    Priority.FOLLOWER: 0.5,
    Priority.SETTLEMENT: 0.3,
    Priority.BACKGROUND: 0.3,
}
# how full (of the paced allowance) a priority may bring the daemon's whole usage: what a lower priority takes
# early in a minute is not there for a higher one later in it, so the lower ones leave the top of the minute
# free; background reads only use the half a busy minute does not need. With everyone greedy, the lead keeps at
# least a fifth of the allowance, followers at least 15 %, settlement what the lead's cap leaves.
FILL = {
    Priority.ORDER: 1.0,
    Priority.LEAD: 1.0,
    Priority.FOLLOWER: 0.8,
    Priority.SETTLEMENT: 1.0,
    Priority.BACKGROUND: 0.5,
}


class RequestBudget:
    """The weight one daemon may use on one host in each calendar minute (the exchange's window)."""

    def __init__(
        self,
        host: str,
        limit_per_minute: int,
        share: float,
        log: Any,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.host = host
        self.sleep = sleep
        self.limit = limit_per_minute
        self.share = share
        self.log = log
        self.clock = clock
        self._minute = -1
        self._used = 0  # counted here, this minute
        self._by_priority: dict[Priority, int] = {}  # counted here, this minute, per priority
        self._server_used = 0  # what the exchange said it counted for this IP, this minute
        self.blocked_until = 0.0  # after a 429/418: nothing goes to the host before this
        self._episode = False
        self.peak = 0
        self.minutes: dict[int, int] = {}  # minute -> weight used, the last hour
        self.waits = 0
        self._queue: list[_Waiter] = []
        self._arrivals = itertools.count()
        self._pump: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()

    @property
    def allowance(self) -> int:
        return max(1, int(self.limit * self.share))

    def set_limit(self, limit_per_minute: int) -> None:
        """The limit the exchange advertises (exchangeInfo `rateLimits`, REQUEST_WEIGHT per minute)."""
        self.limit = limit_per_minute

    def _roll(self, now: float) -> None:
        minute = int(now // MINUTE_S)
        if minute != self._minute:
            self._minute, self._used, self._server_used = minute, 0, 0
            self._by_priority = {}
            for old in [m for m in self.minutes if m < minute - 60]:
                del self.minutes[old]

    def used(self) -> int:
        self._roll(self.clock())
        return max(self._used, self._server_used)

    def _fits(self, weight: int, priority: Priority, now: float) -> tuple[bool, float, bool]:
        """Whether a request fits now; if not, in how many seconds it could, and whether only its own priority's
        cap holds it (then it does not hold back the lower priorities behind it)."""
        if now < self.blocked_until:
            return False, self.blocked_until - now, False
        self._roll(now)
        if priority is Priority.ORDER:
            return True, 0.0, False
        elapsed = now - self._minute * MINUTE_S
        pace = min(1.0, (elapsed + BURST_S) / MINUTE_S)
        used = max(self._used, self._server_used)
        mine = self._by_priority.get(priority, 0)
        fill, cap = self.allowance * FILL[priority], self.allowance * CEILING[priority]
        total_ok = used + weight <= fill * pace
        own_ok = mine + weight <= cap * pace
        if total_ok and own_ok:
            return True, 0.0, False
        # when the paced lines reach it (or the next minute starts)
        fits_at = max((used + weight) / fill, (mine + weight) / cap) * MINUTE_S - BURST_S
        return False, min(max(0.02, fits_at - elapsed), MINUTE_S - elapsed + 0.02), total_ok

    def _take(self, weight: int, priority: Priority) -> None:
        self._used += weight
        self._by_priority[priority] = self._by_priority.get(priority, 0) + weight
        self.peak = max(self.peak, self._used)
        self.minutes[self._minute] = max(self._used, self._server_used)
        if self._episode and self.clock() >= self.blocked_until:
            self._episode = False

    def has_room(self, weight: int, priority: Priority) -> bool:
        """Whether a read would go at once (nobody waiting before it): work that can wait asks first, so that a
        worker never sits in the queue instead of copying."""
        return not self._queue and self._fits(weight, priority, self.clock())[0]

    async def acquire(self, weight: int, priority: Priority) -> None:
        """Waits until the request fits: after any 429/418 back-off, and (reads) within the allowance and this
        priority's cap, paced over the minute (BURST_S worth at its start, the rest along a straight line), so
        that reads never bunch up at a minute's start and starve for the rest of it. Waiting requests are
        served in order (priority, then arrival): nobody is overtaken by a later request of its own priority.
        Orders and lookups only wait out a back-off."""
        now = self.clock()
        fits, _, _ = self._fits(weight, priority, now)
        if fits and (priority is Priority.ORDER or not self._queue):
            self._take(weight, priority)
            return
        self.waits += 1
        waiter = _Waiter(priority, next(self._arrivals), weight, asyncio.get_running_loop().create_future())
        heapq.heappush(self._queue, waiter)
        self.poke()
        try:
            await waiter.future
        except asyncio.CancelledError:
            waiter.cancelled = True
            raise

    def poke(self) -> None:
        """Serves the queue again now (a new waiter, a back-off recorded, a test's clock moved)."""
        if self._pump is None or self._pump.done():
            self._pump = asyncio.get_running_loop().create_task(self._serve())
        self._kick.set()

    def _grant_ready(self) -> float | None:
        """Grants, in order, every waiter that fits; returns the seconds until the first one left could fit."""
        now = self.clock()
        first_wait: float | None = None
        for waiter in sorted(self._queue):
            if waiter.cancelled or waiter.future.done():
                self._queue.remove(waiter)
                continue
            fits, wait, own_cap_only = self._fits(waiter.weight, waiter.priority, now)
            if fits:
                self._take(waiter.weight, waiter.priority)
                waiter.future.set_result(None)
                self._queue.remove(waiter)
                continue
            first_wait = wait if first_wait is None else min(first_wait, wait)
            if not own_cap_only:
                break  # the allowance (or a back-off) holds back everyone after it
        heapq.heapify(self._queue)
        return first_wait

    async def _serve(self) -> None:
        while self._queue:
            self._kick.clear()
            wait = self._grant_ready()
            if wait is None:
                continue
            await self.sleep_or_kick(wait)

    async def sleep_or_kick(self, seconds: float) -> None:
        sleeper = asyncio.ensure_future(self.sleep(seconds))
        kicked = asyncio.ensure_future(self._kick.wait())
        try:
            await asyncio.wait({sleeper, kicked}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            kicked.cancel()

    def observe(self, headers: Mapping[str, str] | None) -> None:
        """Follows the exchange's count for this IP (it includes what other tools on the machine use)."""
        if not headers:
            return
        value = headers.get("X-MBX-USED-WEIGHT-1M") or headers.get("x-mbx-used-weight-1m")
        if value is None or not str(value).isdigit():
            return
        self._roll(self.clock())
        self._server_used = max(self._server_used, int(value))
        self.peak = max(self.peak, self._server_used)
        self.minutes[self._minute] = max(self._used, self._server_used)

    def rate_limited(self, retry_after: float | None, status: str) -> None:
        """A 429 or 418: every request to this host waits until Retry-After has passed. Logged once per
        episode (an episode ends with the first request sent after it)."""
        wait = retry_after if retry_after is not None else MINUTE_S - self.clock() % MINUTE_S
        self.blocked_until = max(self.blocked_until, self.clock() + wait)
        if self._queue:
            self.poke()
        if not self._episode:
            self._episode = True
            self.log.warning("rate_limited", host=self.host, used_weight=self.used(), wait_s=wait, status=status)


def pass_rate(allowance: int) -> float:
    """The weight a minute followers' periodic passes (reconciliation with the account's true-up) may use: half
    of their share of the allowance; the rest is for activations, close-outs and the lookups of a busy minute."""
    return allowance * CEILING[Priority.FOLLOWER] / 2


def paced_interval(configured_s: float, followers: int, weight_per_pass: int, allowance: int) -> float:
    """The interval the budget can hold for one pass per follower (SPEC 12): never below `configured_s`, and
    stretched to what `pass_rate` gives every follower once."""
    return max(configured_s, followers * pass_spacing_s(weight_per_pass, allowance))


def pass_spacing_s(weight_per_pass: int, allowance: int) -> float:
    """Seconds between two followers' passes at `pass_rate`: how far apart the first ones are spread at start."""
    rate = pass_rate(allowance)
    return weight_per_pass / rate * MINUTE_S if rate > 0 else 0.0


@dataclass(order=True)
class _Waiter:
    priority: Priority
    arrival: int
    weight: int = field(compare=False)
    future: asyncio.Future[None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


class Budgets:
    """The daemon's budgets, one per exchange host, shared by every account on it."""

    def __init__(self, share: float, log: Any, default_limit: int = 2400) -> None:
        self.share = share
        self.log = log
        self.default_limit = default_limit
        self.by_host: dict[str, RequestBudget] = {}

    def for_host(self, host: str) -> RequestBudget:
        if host not in self.by_host:
            self.by_host[host] = RequestBudget(host, self.default_limit, self.share, self.log)
        return self.by_host[host]

    def summary(self) -> dict[str, dict[str, int]]:
        return {h: {"used_1m": b.used(), "peak_1m": b.peak, "allowance": b.allowance} for h, b in self.by_host.items()}

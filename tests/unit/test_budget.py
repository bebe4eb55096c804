"""The request budget of one host, on a clock the test moves: allowance, priorities, the server's count, and
the back-off after a 429."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import structlog

from bot import logs
from bot.venue.budget import Priority, RequestBudget
from bot.venue.ccxt_venue import AccountVenue


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_075.0  # 55 s into a minute: the paced ceiling is the whole share

    def __call__(self) -> float:
        return self.now


def budget(clock: Clock) -> RequestBudget:
    return RequestBudget("fapi.example", 2400, 0.5, logs.get(), clock)


async def fits(task: asyncio.Future[None]) -> bool:
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    return task.done()


async def test_reads_stay_within_their_share_and_orders_are_never_held_back() -> None:
    clock = Clock()
    b = budget(clock)
    assert b.allowance == 1200
    for _ in range(120):
        await b.acquire(5, Priority.FOLLOWER)  # followers may use half of the allowance: 600
    waiting = asyncio.ensure_future(b.acquire(5, Priority.FOLLOWER))
    assert not await fits(waiting)  # the next follower read waits for the next minute
    await b.acquire(5, Priority.LEAD)  # the lead's read still goes
    await b.acquire(0, Priority.ORDER)  # and orders, whatever the reads do
    await b.acquire(1, Priority.ORDER)  # and lookups
    assert b.used() == 606
    waiting.cancel()


async def test_reads_are_paced_over_the_minute() -> None:
    clock = Clock()
    clock.now -= 55  # the minute's start: 10 s worth of the lead's cap of 780 (65 % of 1,200), i.e. 130
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    b = RequestBudget("fapi.example", 2400, 0.5, logs.get(), clock, sleep)
    for _ in range(26):
        await b.acquire(5, Priority.LEAD)
    assert slept == []
    await b.acquire(5, Priority.LEAD)  # 135 fits when the paced line reaches it: 13 s worth of 780, 3 s later
    assert len(slept) == 1 and abs(slept[0] - (135 / 780 * 60 - 10)) < 1e-9


async def test_a_greedy_lead_never_starves_the_followers() -> None:
    clock = Clock()
    b = budget(clock)
    for _ in range(156):
        await b.acquire(5, Priority.LEAD)  # the lead at its cap: 780
    waiting = asyncio.ensure_future(b.acquire(5, Priority.LEAD))
    assert not await fits(waiting)
    for _ in range(36):
        await b.acquire(5, Priority.FOLLOWER)  # the followers still have what is left below 80 %: 180
    follower = asyncio.ensure_future(b.acquire(5, Priority.FOLLOWER))
    assert not await fits(follower) and b.used() == 960
    waiting.cancel()
    follower.cancel()


async def test_background_reads_leave_a_busy_minutes_top_to_the_lead() -> None:
    clock = Clock()
    b = budget(clock)
    for _ in range(60):
        await b.acquire(5, Priority.LEAD)  # 300
    for _ in range(60):
        await b.acquire(5, Priority.BACKGROUND)  # background reads: up to half, 600
    settlement = asyncio.ensure_future(b.acquire(5, Priority.BACKGROUND))
    assert not await fits(settlement)  # though under its own cap of 360
    for _ in range(72):
        await b.acquire(5, Priority.FOLLOWER)  # followers up to 80 %: 960
    for _ in range(48):
        await b.acquire(5, Priority.LEAD)  # and the lead the rest
    assert b.used() == 1200
    settlement.cancel()


async def test_the_servers_count_for_the_ip_holds_reads_back() -> None:
    clock = Clock()
    b = budget(clock)
    b.observe({"X-MBX-USED-WEIGHT-1M": "1199"})  # other tools on the same IP used most of the allowance
    waiting = asyncio.ensure_future(b.acquire(5, Priority.LEAD))
    assert not await fits(waiting)
    waiting.cancel()
    clock.now += 60  # a new minute: the count starts again
    await b.acquire(5, Priority.LEAD)


async def test_a_429_stops_every_request_until_retry_after_and_is_logged_once_per_episode() -> None:
    clock = Clock()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    b = RequestBudget("fapi.example", 2400, 0.5, logs.get(), clock, sleep)
    with structlog.testing.capture_logs() as events:
        b.rate_limited(7.0, "429")
        b.rate_limited(7.0, "429")  # the same episode
        await b.acquire(0, Priority.ORDER)  # during a back-off even an order waits: the IP would be banned
        assert slept == [7.0]
        b.rate_limited(3.0, "418")  # a new episode
    limited = [e for e in events if e["event"] == "rate_limited"]
    assert [(e["host"], e["status"]) for e in limited] == [("fapi.example", "429"), ("fapi.example", "418")]
    assert limited[0]["wait_s"] == 7.0


def test_the_reconciliation_interval_stretches_to_what_the_budget_holds() -> None:
    from bot.venue.budget import paced_interval

    # 20 followers x 11 weight every 30 s = 440 a minute: within a quarter of 1,200 (300)? no: 44 s
    assert paced_interval(30, 20, 11, 1200) == 44.0
    assert paced_interval(30, 5, 11, 1200) == 30  # never below what is configured
    # 500 followers on Binance's default budget: once every ~18 minutes
    assert round(paced_interval(30, 500, 11, 1200)) == 1100


async def test_work_that_can_wait_asks_whether_there_is_room_first() -> None:
    clock = Clock()
    b = budget(clock)
    assert b.has_room(5, Priority.FOLLOWER)
    for _ in range(120):
        await b.acquire(5, Priority.FOLLOWER)
    assert not b.has_room(5, Priority.FOLLOWER)  # at the followers' cap: a reconciliation would wait
    assert b.has_room(5, Priority.LEAD)


class _Recorder:
    """A budget that records the priority of every request it is asked for."""

    def __init__(self) -> None:
        self.priorities: list[Priority] = []

    async def acquire(self, weight: int, priority: Priority) -> None:
        self.priorities.append(priority)

    def observe(self, headers: object) -> None:
        return None


class _Client:
    def __init__(self) -> None:
        self.markets_by_id = {"ETHUSDT": [{"symbol": "ETH/USDT:USDT"}]}
        self.last_response_headers: dict[str, str] = {}

    async def fapiPrivateGetOrder(self, params: object) -> dict[str, str]:
        return {"orderId": "1", "status": "FILLED", "executedQty": "0.1", "avgPrice": "3000"}

    async def fapiPublicGetPremiumIndex(self, params: object = None) -> object:
        row = {"symbol": "ETHUSDT", "markPrice": "3000"}
        return row if params else [row]

    async def set_leverage(self, leverage: int, symbol: str) -> dict[str, str]:
        return {}


async def test_order_path_reads_go_at_order_priority_on_a_follower_account() -> None:
    """Lookups, a plan's mark and the leverage before an open are on the order path: never held back by reads
    (SPEC 12). ORDER is 0: a `priority or default` once sent them at the account's own priority instead."""
    budget = _Recorder()
    venue = AccountVenue("f1", _Client(), budget=budget, priority=Priority.FOLLOWER)  # type: ignore[arg-type]
    await venue.lookup("ETHUSDT", "cb-x-1")
    await venue.mark_price("ETHUSDT")
    await venue.set_leverage("ETHUSDT", Decimal(5))
    await venue.mark_prices()  # an ordinary read: the account's own priority
    assert budget.priorities == [Priority.ORDER, Priority.ORDER, Priority.ORDER, Priority.FOLLOWER]

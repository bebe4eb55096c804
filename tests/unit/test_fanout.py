"""A fan-out's chunks: every follower once, in order, the first chunk small and each next one twice as big, so
that a fan-out of N followers makes about log2(N/16) + 1 commits; a chunk's orders wait until it is on disk."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.model import FollowerState, LeadChange
from bot.engine.clock import SystemClock
from bot.engine.fanout import FanOut, chunks
from bot.engine.journal import PlanJournal
from bot.engine.mirror import FollowerMirror
from bot.store.connection import StateWriteFailed
from bot.store.db import Store
from bot.store.rows import IntentRow, StoredChange


@given(n=st.integers(min_value=0, max_value=3000), first=st.integers(min_value=1, max_value=64))
def test_chunks_cover_every_follower_once_in_order_doubling(n: int, first: int) -> None:
    items = list(range(n))
    parts = [list(c) for c in chunks(items, first)]
    assert [x for part in parts for x in part] == items
    assert all(len(part) == first * 2**i for i, part in enumerate(parts[:-1]))
    assert len(parts) == (0 if n == 0 else next(k for k in range(1, 40) if first * (2**k - 1) >= n))


def test_a_hundred_followers_take_three_commits_and_five_hundred_six() -> None:
    assert [len(c) for c in chunks(list(range(100)))] == [16, 32, 52]
    assert len(list(chunks(list(range(500))))) == 6


class _Orders:
    def __init__(self) -> None:
        self.sent: list[list[IntentRow]] = []

    async def send(self, intents: list[IntentRow]) -> None:
        self.sent.append(intents)


class _Mirror:
    """The two things `FanOut._send` asks of a follower's mirror: its orders sent, then its progress."""

    def __init__(self) -> None:
        self.orders = _Orders()
        self.advanced: list[int] = []
        self.log: Any = None

    def advance(self, stored: StoredChange, ignored: bool) -> None:
        self.advanced.append(stored.change.seq)


async def test_a_chunks_orders_leave_once_its_plans_are_on_disk_and_never_if_the_sync_fails() -> None:
    mirror = _Mirror()
    stored = StoredChange(LeadChange(7, "ETHUSDT", Decimal(0), Decimal(1), None), Decimal(10000), 1)
    intents = cast(list[IntentRow], ["an intent"])
    on_disk: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    sending = asyncio.create_task(FanOut._send(cast(FollowerMirror, mirror), stored, intents, on_disk))
    for _ in range(5):
        await asyncio.sleep(0)
    assert mirror.orders.sent == [] and not sending.done()
    on_disk.set_result(None)
    await asyncio.wait_for(sending, 5)
    assert mirror.orders.sent == [intents] and mirror.advanced == [7]

    refused: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    refused.set_exception(StateWriteFailed("syncing the state to disk failed"))
    with pytest.raises(StateWriteFailed):
        await FanOut._send(cast(FollowerMirror, mirror), stored, intents, refused)
    assert mirror.orders.sent == [intents] and mirror.advanced == [7]  # nothing sent, no progress


class _Held:
    """What `FanOut.ready` asks of a follower's mirror besides its row: an account read in hand, no close-out
    asked for, and its claim (its worker is not busy)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.estimating = True
        self.end_request: str | None = None
        self.claimed = False

    def claim(self) -> bool:
        if self.claimed:
            return False
        self.claimed = True
        return True

    def unclaim(self) -> None:
        self.claimed = False


def test_a_fan_out_holds_a_follower_by_its_row_as_the_store_last_wrote_it(tmp_path: Path) -> None:
    """`ready` reads the rows the store keeps (not every row per change): each write through the store, by
    this process or before a restart, is what it sees next."""
    store = Store(tmp_path / "state.sqlite3")
    price = Decimal(3000)
    store.record_lead_changes([("ETHUSDT", Decimal(0), Decimal(1), price, price, price)], Decimal(10000), 1)
    for name in ("a", "b", "c"):
        store.activate_follower(name, Decimal(1000), Decimal(1000), False, 1)
        store.mark_bootstrapped(name)
    store.record_lead_changes([("ETHUSDT", Decimal(1), Decimal(2), price, price, price)], Decimal(10000), 2)
    (stored,) = store.changes_after(1)
    fan_out = FanOut(store, PlanJournal(store), SystemClock(), None)
    mirrors = {name: _Held(name) for name in ("a", "b", "c")}
    as_mirrors = cast(list[FollowerMirror], list(mirrors.values()))

    def held() -> list[str]:
        holding = fan_out.ready(stored, as_mirrors)
        FanOut.release(holding)
        return [m.name for m in holding]

    assert held() == ["a", "b", "c"]
    store.begin_close_out("b", FollowerState.ENDED, "removed", 3)  # a close-out: not copied to any more
    store.advance("c", stored.change.seq)  # copied already (by its worker)
    assert held() == ["a"]
    mirrors["a"].claimed = True  # busy in its worker
    assert held() == []
    store.close()
    reopened = Store(tmp_path / "state.sqlite3")  # a restart: the rows as the disk has them
    fan_out = FanOut(reopened, PlanJournal(reopened), SystemClock(), None)
    assert held() == []
    mirrors["a"].claimed = False
    assert held() == ["a"]
    reopened.close()

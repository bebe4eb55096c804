"""A lead change copied to every follower ready for it at once (SPEC 3, 4), pipelined: plans are made and made
durable in chunks; a chunk's fsync runs in a thread while the next chunk is planned, and its orders leave as
soon as it is on disk.

The rules are the worker's: an intent is durable before its order leaves, the stop loss is checked with the
equity the plan is sized on, a follower's changes are copied in order. A follower that is not ready (busy in
its worker, behind, with an order still unresolved, without an account read yet) is left to its own worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bot.core.model import FollowerState, Plan, PlanKind, PlanRecord
from bot.engine.clock import Clock
from bot.engine.crash import FAN_OUT_CHUNK, crash_point
from bot.engine.journal import PlanJournal
from bot.engine.mirror import FollowerMirror
from bot.engine.orders import OpensHalted
from bot.store.db import Store
from bot.store.rows import IntentRow, StoredChange
from bot.venue.errors import VenueError

T = TypeVar("T")
# the first orders leave after this many plans, one commit and its fsync; each next chunk is twice as big (16 against
# 8 saves a commit and an fsync per fan-out: 100 followers ~33 ms against ~35 ms p50, `bench/copy_path.py`; 32 was no
# better)
FIRST_CHUNK = 16


def chunks(items: Sequence[T], first: int = FIRST_CHUNK) -> Iterator[Sequence[T]]:
    """16, 32, 64, ...: the first orders leave early, and a fan-out of N followers makes about log2(N/16) + 1
    commits, each with its fsync (100 followers: 3)."""
    start, size = 0, first
    while start < len(items):
        yield items[start : start + size]
        start, size = start + size, size * 2


@dataclass(slots=True)
class _Progress:
    """What a fan-out has done so far: its orders' tasks, its plan commits, its orders."""

    sends: list[asyncio.Task[None]] = field(default_factory=list)
    commits: int = 0
    orders: int = 0


@dataclass(slots=True)
class _Planned:
    mirror: FollowerMirror
    record: PlanRecord
    plan: Plan


class FanOut:
    def __init__(
        self, store: Store, journal: PlanJournal, clock: Clock, log: Any, first_chunk: int = FIRST_CHUNK
    ) -> None:
        self.store = store
        self.journal = journal
        self.clock = clock
        self.log = log
        self.first_chunk = first_chunk

    async def run(
        self,
        mirrors: Mapping[str, FollowerMirror],
        wakes: Mapping[str, asyncio.Event],
        lead_changed: asyncio.Event,
        stopping: asyncio.Event,
        copied: int,
    ) -> None:
        """Each lead change recorded after `copied` (the last one at start: those before are the workers' to
        catch up), copied to every follower ready for it at once; the others' workers are woken to copy it."""
        while not stopping.is_set():
            await lead_changed.wait()
            lead_changed.clear()
            for stored in self.store.changes_after(copied):
                if stopping.is_set():
                    return
                held = self.ready(stored, list(mirrors.values()))
                for name in mirrors.keys() - {m.name for m in held}:
                    wakes[name].set()  # the followers not held catch up in their workers, at once
                complete = False
                try:
                    complete = await self.copy(stored, held, stopping)
                finally:
                    self.release(held)
                    if not complete:  # the followers it left at the change before copy it in their workers
                        for mirror in held:
                            wakes[mirror.name].set()
                copied = stored.change.seq

    def ready(self, stored: StoredChange, mirrors: Iterable[FollowerMirror]) -> list[FollowerMirror]:
        """The followers this fan-out copies `stored` to, held (their workers wait) until `release`: active,
        copied up to the change before, nothing unresolved, an account read in hand, not busy. A follower's row
        is the one the store keeps (its own writes write it through or drop it: read again only then), the
        rest is read in two statements for all: no statement per follower, and no read of every row on the
        change's critical path (0.7 ms of 100 followers' fan-out, issue 12's profile)."""
        seq = stored.change.seq
        unresolved = self.store.followers_with_open_intents()
        planned = self.store.planned(PlanKind.COPY, seq)
        held = []
        for mirror in mirrors:
            row = self.store.follower(mirror.name)
            if (
                row is None
                or row.state != FollowerState.ACTIVE
                or not row.bootstrapped
                or row.last_seq != seq - 1
                or mirror.name in unresolved
                or mirror.name in planned
                or not mirror.estimating
                or mirror.end_request is not None
                or not mirror.claim()
            ):
                continue
            held.append(mirror)
        return held

    @staticmethod
    def release(mirrors: Iterable[FollowerMirror]) -> None:
        for mirror in mirrors:
            mirror.unclaim()

    async def copy(self, stored: StoredChange, mirrors: Sequence[FollowerMirror], stopping: asyncio.Event) -> bool:
        """Plans, journals and sends one lead change for the followers held by `ready`, chunk by chunk. False
        when it stopped before every follower was planned (a read it needed failed, or the daemon stops): the
        ones left are at the change before, for their workers to copy. Orders already on their way are always
        seen to the end before it returns (cancelled only with it), so that no worker acts beside them."""
        started, syncs = self.clock.now_ms(), self.store.syncs
        done = _Progress()
        complete = False
        try:
            complete = await self._plan_and_send(stored, mirrors, stopping, done)
        except VenueError as exc:
            self.log.error("fan_out_failed", lead_change=stored.change.seq, error=str(exc))
        except asyncio.CancelledError:
            for task in done.sends:
                task.cancel()
            await asyncio.gather(*done.sends, return_exceptions=True)
            raise
        results = await asyncio.gather(*done.sends, return_exceptions=True)
        self.log.info(
            "lead_change_copied",
            lead_change=stored.change.seq,
            followers=len(mirrors),
            orders=done.orders,
            plan_commits=done.commits,
            disk_syncs=self.store.syncs - syncs,  # a sync that took several chunks' commits along is one
            fan_out_ms=self.clock.now_ms() - started,
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]  # not a venue's answer (those are handled per follower): a bug, never silent
        return complete

    async def _plan_and_send(
        self,
        stored: StoredChange,
        mirrors: Sequence[FollowerMirror],
        stopping: asyncio.Event,
        done: _Progress,
    ) -> bool:
        change = stored.change
        ignoring = self.store.ignoring(change.symbol)
        marks = None
        for chunk in chunks(mirrors, self.first_chunk):
            if stopping.is_set():
                return False  # the rest stay at the change before: their workers copy it after a restart
            planned = []
            for mirror in chunk:
                ignored = mirror.name in ignoring
                if ignored or not mirror.copies(change.symbol):
                    mirror.advance(stored, ignored)
                    continue
                if marks is None:  # the plan's symbol read fresh once, for every follower
                    marks = await mirror.prices.for_plan(change.symbol, stored.detected_ms)
                copy_equity = await mirror.copy_equity()
                if mirror.stop_loss_hit(copy_equity):
                    continue  # closing now: its worker runs the close-out
                plan = await mirror.plan(stored, copy_equity, marks)
                planned.append(_Planned(mirror, mirror.orders.record_of(PlanKind.COPY, change.seq, plan), plan))
            if not planned:
                continue
            rows, on_disk = self.journal.record_all([p.record for p in planned])
            done.commits += 1
            for p, intents in zip(planned, rows, strict=True):
                p.mirror.orders.journaled(p.record, p.plan, intents)
                done.orders += len(intents)
                done.sends.append(asyncio.create_task(self._send(p.mirror, stored, intents, on_disk)))
            await asyncio.sleep(0)  # the orders of a chunk on disk leave before the next chunk is planned
            crash_point(FAN_OUT_CHUNK)
        return True

    @staticmethod
    async def _send(
        mirror: FollowerMirror, stored: StoredChange, intents: list[IntentRow], on_disk: asyncio.Future[None]
    ) -> None:
        """One follower's orders for the change once its plan is on disk, then its progress. A failure leaves
        the intents for its worker to resolve (looked up by client order id first), as a crash would; a plan
        that could not be synced to disk is never sent (the daemon stops: `StateWriteFailed`)."""
        await on_disk
        try:
            await mirror.orders.send(intents)
        except OpensHalted:
            return  # a close-out was requested meanwhile: it abandons what is left
        except VenueError as exc:
            mirror.log.error("follower_sync_failed", error=str(exc), lead_change=stored.change.seq)
            return
        mirror.advance(stored, False)

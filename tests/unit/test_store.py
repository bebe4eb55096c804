"""The store's own guarantees: activation snapshots, plans journaled with their ids, outcomes applied once."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import sqlite3
import threading
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core.model import FollowerState, Intent, IntentStatus, Leg, PlanKind, PlanRecord, Skip
from bot.core.risk import fill_sums
from bot.store import connection
from bot.store.connection import StateWriteFailed
from bot.store.db import Store
from bot.store.rows import IntentRow
from tests.daemon_harness import wait_until

D = Decimal


def test_activation_snapshots_the_lead_at_its_starting_change(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    store.set_lead_baseline({"ETHUSDT": (D(2), D(3000))}, 1)
    store.activate_follower("on", D(1000), D(1000), copy_existing=True, now_ms=2)
    store.activate_follower("off", D(1000), D(1000), copy_existing=False, now_ms=2)
    store.record_lead_changes([("ETHUSDT", D(2), D(5), D(3000), D(3000), D(3000))], D(10000), 3)
    # a bootstrap that runs late still copies the lead as it was at activation; the change comes on top
    assert store.bootstrap_positions("on") == {"ETHUSDT": D(2)}
    assert store.ignored("off") == {"ETHUSDT"}
    assert [c.change.seq for c in store.changes_after(store.follower("on").last_seq)] == [1]  # type: ignore[union-attr]
    store.activate_follower("late", D(1000), D(1500), copy_existing=True, now_ms=4)
    late = store.follower("late")
    assert late is not None and late.last_seq == 1 and late.reserve == D(500)
    assert store.bootstrap_positions("late") == {"ETHUSDT": D(5)}


def test_plan_outcome_and_restart(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = Store(path)
    store.activate_follower("f", D(1000), D(1000), copy_existing=True, now_ms=1)
    intent = Intent(Leg.OPEN, "ETHUSDT", "buy", D("0.2"), False)
    store.record_plans([PlanRecord("f", PlanKind.COPY, 1, [(intent, "cb-x-1")], (), 5)])
    (row,) = store.unresolved_intents("f")
    assert row.client_order_id == "cb-x-1" and row.status == "pending"
    epoch = store.epoch
    store.close()
    reopened = Store(path)  # a restart sees the same pending intent and the same epoch
    assert reopened.epoch == epoch
    (row,) = reopened.unresolved_intents("f")
    reopened.record_outcome(row, IntentStatus.FILLED, "42", D("0.2"), D(3000), 6)
    reopened.record_outcome(row, IntentStatus.FILLED, "42", D("0.2"), D(3000), 7)  # applied once: the row is final now
    assert reopened.follower_positions("f") == {"ETHUSDT": D("0.2")}
    assert reopened.unresolved_intents("f") == []


def test_spot_fills_keep_fees_a_holding_is_net_of_the_fee_in_the_asset_bought(tmp_path: Path) -> None:
    """SPEC 11 example G's follower: buys 0.00199 BTC (fee 0.00000199 BTC), sells 0.00149 (fee 0.0745 USDT)."""
    store = Store(tmp_path / "s.sqlite3")
    store.activate_follower("f", D(1000), D(1000), copy_existing=True, now_ms=1)
    store.set_spot_reserve("f", {"ETH": D("0.5")})
    buy = Intent(Leg.OPEN, "BTCUSDT", "buy", D("0.00199"), False)
    sell = Intent(Leg.REDUCE, "BTCUSDT", "sell", D("0.00149"), False)
    store.record_plans(
        [
            PlanRecord("f", PlanKind.COPY, 1, [(buy, "cb-x-1")], (), 2),
            PlanRecord("f", PlanKind.COPY, 2, [(sell, "cb-x-2")], (), 3),
        ]
    )
    first, second = store.unresolved_intents("f")
    store.record_outcome(first, IntentStatus.FILLED, "1", D("0.00199"), D(50000), 4, fee_base=D("0.00000199"))
    assert store.follower_positions("f") == {"BTCUSDT": D("0.00198801")}
    mark = store.last_fill("f")
    store.record_outcome(second, IntentStatus.FILLED, "2", D("0.00149"), D(50000), 5, fee_quote=D("0.0745"))
    assert store.follower_positions("f") == {"BTCUSDT": D("0.00049801")}
    assert store.cash_flows_since("f", 0) == D("-99.5") + D("74.5") - D("0.0745")
    assert store.cash_flows_since("f", mark) == D("74.5") - D("0.0745")
    assert store.spot_reserve("f") == {"ETH": D("0.5")}


def test_a_chunk_of_plans_is_journaled_with_ids_after_every_one_ever_used(tmp_path: Path) -> None:
    """A fan-out's chunk is a statement per table: the ids it hands out are the ones stored, in order, after the
    highest ever used (a row gone since does not give its id back), and the next plan's come after them."""
    store = Store(tmp_path / "s.sqlite3")
    buy = Intent(Leg.OPEN, "ETHUSDT", "buy", D("0.1"), False)
    close = Intent(Leg.CLOSE, "BTCUSDT", "sell", D("0.01"), True)
    store.record_plans([PlanRecord("a", PlanKind.COPY, 1, [(buy, "cb-a-1")], (), 1)])
    store._db.execute("DELETE FROM intents")  # the highest id used is gone: AUTOINCREMENT's counter keeps it
    skip = Skip("sync_skipped_slippage", "ETHUSDT", {"price": "1"})
    rows = store.record_plans(
        [
            PlanRecord("a", PlanKind.COPY, 2, [(close, "cb-a-2"), (buy, "cb-a-3")], (), 2),
            PlanRecord("b", PlanKind.COPY, 2, [], (skip,), 2),
            PlanRecord("c", PlanKind.COPY, 2, [(buy, "cb-c-2")], (), 2),
        ]
    )
    assert [[(r.id, r.client_order_id, r.idx) for r in plan] for plan in rows] == [
        [(2, "cb-a-2", 0), (3, "cb-a-3", 1)],
        [],
        [(4, "cb-c-2", 0)],
    ]
    assert store.intents_of("a", PlanKind.COPY, 2) == rows[0] and store.intents_of("c", PlanKind.COPY, 2) == rows[2]
    assert store.skips("b") == [(2, "sync_skipped_slippage", "ETHUSDT")] and store.has_plan("b", PlanKind.COPY, 2)
    store.activate_follower("c", D(1000), D(1000), copy_existing=True, now_ms=3)
    store.change_investment("c", D(500), PlanKind.RELEASE, 9, [(close, "cb-c-9")], 3)
    assert [r.id for r in store.intents_of("c", PlanKind.RELEASE, 9)] == [5]
    with pytest.raises(sqlite3.IntegrityError):  # a plan journaled twice: the whole chunk is refused
        store.record_plans([PlanRecord("d", PlanKind.COPY, 2, [(buy, "cb-d-2")], (), 4), rows_plan(rows, "c")])
    assert store.intents_of("d", PlanKind.COPY, 2) == []
    store.close()


def rows_plan(rows: list[list[IntentRow]], follower: str) -> PlanRecord:
    (row,) = next(plan for plan in rows if plan and plan[0].follower == follower)
    return PlanRecord(follower, row.kind, row.number, [(row.intent, row.client_order_id)], (), 5)


WRITES = [
    "fill_buy", "fill_sell", "advance", "advance_back", "advance_unignore", "refused", "state", "closing", "finish",
    "investment", "position", "activate",
    "bootstrapped", "failed", "waiting",
]  # fmt: skip


def _fresh_view(path: Path, name: str) -> tuple[object, dict[str, Decimal], list[tuple[str, Decimal, Decimal, int]]]:
    other = Store(path)  # nothing kept: every answer from the database
    try:
        return other.follower(name), other.follower_positions(name), other.fills_since(name, 0)
    finally:
        other.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.sampled_from(WRITES), min_size=1, max_size=14))
def test_the_rows_a_fan_out_reads_are_kept_exactly_as_the_database_has_them(tmp_path: Path, steps: list[str]) -> None:
    """The store keeps each follower's row, positions and fills since the last read: after any sequence of its
    own writes (a failed one included), what it answers is what a store reading the file afresh answers."""
    path = tmp_path / f"{uuid.uuid4().hex}.sqlite3"
    store = Store(path)
    store.activate_follower("f", D(1000), D(1200), copy_existing=True, now_ms=1)
    for seq, step in enumerate(steps, start=1):
        store.follower("f"), store.follower_positions("f"), store.fills_since("f", 0)  # read, so kept
        _write(store, step, seq)
        assert (store.follower("f"), store.follower_positions("f"), store.fills_since("f", 0)) == _fresh_view(
            path, "f"
        ), step
        assert store.fill_sums_since("f", 0) == fill_sums((s, q, p) for s, q, p, _ in _fresh_view(path, "f")[2])
        since = store.last_fill("f")
        assert store.fills_since("f", since) == [] and store.fill_sums_since("f", since) == {}
    store.close()


def _write(store: Store, step: str, seq: int) -> None:
    if step in ("fill_buy", "fill_sell"):
        side = "buy" if step == "fill_buy" else "sell"
        intent = Intent(Leg.OPEN, "ETHUSDT", side, D("0.1"), False)
        store.record_plans([PlanRecord("f", PlanKind.COPY, 1000 + seq, [(intent, f"cb-{seq}")], (), seq)])
        (row,) = store.intents_of("f", PlanKind.COPY, 1000 + seq)
        store.record_outcome(row, IntentStatus.FILLED, f"o{seq}", D("0.1"), D(3000) + seq, seq)
    elif step == "advance":
        store.advance("f", seq)
    elif step == "advance_back":  # a follower already further on stays there
        store.advance("f", 1)
    elif step == "advance_unignore":
        store.advance("f", seq, unignore="ETHUSDT")
    elif step == "refused":  # a one-statement write the database refuses (NOT NULL): nothing of it stays
        with contextlib.suppress(sqlite3.IntegrityError):
            store.write("UPDATE followers SET last_seq=NULL WHERE name='f'")
    elif step == "state":
        store.set_follower_state("f", FollowerState.ACTIVE, f"r{seq}")
    elif step == "closing":
        store.begin_close_out("f", FollowerState.ENDED, "test", seq)
    elif step == "finish":
        store.finish_close_out("f", D(1100), seq)
    elif step == "investment":
        store.change_investment("f", D(900) + seq, PlanKind.RELEASE, seq, [], seq)
    elif step == "position":
        store.set_follower_position("f", "BTCUSDT", D(seq) / 100)
    elif step == "activate":
        store.activate_follower("f", D(1000), D(1300), copy_existing=False, now_ms=seq)
    elif step == "bootstrapped":
        store.mark_bootstrapped("f")
    elif step == "waiting":
        store.register_waiting("f", D(800), "hash", seq)
    elif step == "failed":  # a write that fails half-way leaves nothing behind, kept copies included
        with contextlib.suppress(RuntimeError), store.transaction(changes="f") as db:
            db.execute("UPDATE followers SET state='ended' WHERE name='f'")
            db.execute("UPDATE follower_positions SET amount='7' WHERE follower='f'")
            raise RuntimeError("half-way")


def _committed_positions(path: Path) -> dict[str, Decimal]:
    """What another process reads now (a plain reader: a second Store would wait for this one's write lock)."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return {s: D(a) for s, a in db.execute("SELECT symbol, amount FROM follower_positions WHERE follower='f'")}


def _committed_last_seq(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT last_seq FROM followers WHERE name='f'").fetchone()[0])


def _filled_once(store: Store, seq: int) -> None:
    intent = Intent(Leg.OPEN, "ETHUSDT", "buy", D("0.1"), False)
    store.record_plans([PlanRecord("f", PlanKind.COPY, seq, [(intent, f"cb-{seq}")], (), seq)])
    (row,) = store.intents_of("f", PlanKind.COPY, seq)
    store.record_outcome(row, IntentStatus.FILLED, f"o{seq}", D("0.1"), D(3000), seq)


async def test_changes_of_one_loop_turn_commit_together_at_its_end_and_durable_ones_at_once(tmp_path: Path) -> None:
    """Group commit of the outcomes: this connection reads them at once, another one after the turn; a durable
    change (a plan) commits what came before it with itself, before the call returns."""
    path = tmp_path / "s.sqlite3"
    store = Store(path)
    store.activate_follower("f", D(1000), D(1000), copy_existing=True, now_ms=1)
    _filled_once(store, 1)  # plan (durable), then its outcome (batched)
    store.advance("f", 1)
    assert store.follower_positions("f") == {"ETHUSDT": D("0.1")} and store.follower("f").last_seq == 1  # type: ignore[union-attr]
    assert _committed_positions(path) == {}  # not committed yet: the turn is not over
    await asyncio.sleep(0)
    assert _committed_positions(path) == {"ETHUSDT": D("0.1")}

    _filled_once(store, 2)
    intent = Intent(Leg.OPEN, "ETHUSDT", "buy", D("0.1"), False)
    store.record_plans([PlanRecord("f", PlanKind.COPY, 3, [(intent, "cb-3")], (), 3)])  # durable: takes 2 along
    assert _committed_positions(path) == {"ETHUSDT": D("0.2")}
    store.close()


async def test_a_failed_change_in_a_turn_takes_only_itself_back(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = Store(path)
    store.activate_follower("f", D(1000), D(1000), copy_existing=True, now_ms=1)
    store.advance("f", 5)
    with contextlib.suppress(RuntimeError), store.transaction(changes="f") as db:
        db.execute("UPDATE followers SET last_seq=9 WHERE name='f'")
        raise RuntimeError("half-way")
    await asyncio.sleep(0)
    assert _fresh_view(path, "f")[0].last_seq == 5  # type: ignore[attr-defined]
    store.close()


class _CommitRefused:
    """The store's connection, but its disk refuses commits (full, failing): one edge, nothing else changed."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, args: tuple[object, ...] = ()) -> sqlite3.Cursor:
        if sql == "COMMIT":
            raise sqlite3.OperationalError("database or disk is full")
        return self._db.execute(sql, args)

    def close(self) -> None:
        self._db.close()


async def test_a_commit_refused_at_the_end_of_a_turn_stops_every_later_write_and_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = Store(path)
    store.activate_follower("f", D(1000), D(1000), copy_existing=True, now_ms=1)
    store.follower_positions("f")
    reported: list[BaseException] = []
    store.on_commit_failure = reported.append
    store._db = _CommitRefused(store._db)  # type: ignore[assignment]
    store.set_follower_position("f", "ETHUSDT", D(1))
    await asyncio.sleep(0)
    assert [str(e) for e in reported] == ["database or disk is full"]
    with pytest.raises(StateWriteFailed, match="an earlier commit or sync failed"):
        store.advance("f", 2)
    assert store.follower_positions("f") == {}  # what was lost is not kept either
    store.close()
    assert _committed_positions(path) == {}


def test_the_leverage_kept_per_follower_follows_every_write(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = Store(path)
    assert store.leverage_set("f", "ETHUSDT") is None  # read (nothing set): kept
    store.record_leverage("f", "ETHUSDT", D(5))
    assert store.leverage_set("f", "ETHUSDT") == D(5)
    store.record_leverage("f", "ETHUSDT", D(3))
    store.record_leverage("f", "BTCUSDT", D(2))
    assert (store.leverage_set("f", "ETHUSDT"), store.leverage_set("f", "BTCUSDT")) == (D(3), D(2))
    store.close()
    other = Store(path)
    assert (other.leverage_set("f", "ETHUSDT"), other.leverage_set("f", "BTCUSDT")) == (D(3), D(2))
    other.close()


def _plan(follower: str, seq: int) -> PlanRecord:
    intent = Intent(Leg.OPEN, "ETHUSDT", "buy", D("0.1"), False)
    return PlanRecord(follower, PlanKind.COPY, seq, [(intent, f"cb-{follower}-{seq}")], (), seq)


async def test_a_chunk_committed_now_is_on_disk_once_on_disk_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fan-out's chunk commits at once (another process reads it) and is fsynced in a thread: callers after the
    same commits share a sync, a caller after a newer commit begins its own beside the one in flight, and none
    returns before the fsync of the write-ahead log it waits for."""
    path = tmp_path / "s.sqlite3"
    store = Store(path)
    started: list[str] = []
    release = threading.Event()
    real = connection._fdatasync

    def held(wal: str) -> None:
        started.append(wal)
        release.wait(10)
        real(wal)

    monkeypatch.setattr(connection, "_fdatasync", held)
    store.record_plans([_plan("a", 1), _plan("b", 1)], synced=False)
    with contextlib.closing(sqlite3.connect(path)) as reader:  # committed: another process reads it at once
        assert reader.execute("SELECT COUNT(*) FROM intents").fetchone()[0] == 2
    first, second = asyncio.ensure_future(store.on_disk()), asyncio.ensure_future(store.on_disk())
    await wait_until(lambda: len(started) == 1)
    store.record_plans([_plan("c", 1)], synced=False)
    third = asyncio.ensure_future(store.on_disk())
    await wait_until(lambda: len(started) == 2)  # side by side with the first, not after it
    assert not (first.done() or second.done() or third.done())
    release.set()
    await asyncio.wait_for(asyncio.gather(first, second, third), 10)
    assert started == [f"{path}-wal"] * 2 and store.syncs == 2
    await store.on_disk()  # nothing committed since: no sync
    store.record_plans([_plan("d", 1)])  # synced at commit (FULL): covers every commit before it
    syncs = store.syncs
    await store.on_disk()
    assert store.syncs == syncs and len(started) == 2
    store.close()


async def test_a_sync_the_disk_refuses_stops_every_later_write_and_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path / "s.sqlite3")
    store.activate_follower("f", D(1000), D(1000), copy_existing=True, now_ms=1)
    reported: list[BaseException] = []
    store.on_commit_failure = reported.append

    def refused(wal: str) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(connection, "_fdatasync", refused)
    store.record_plans([_plan("f", 1)], synced=False)
    with pytest.raises(StateWriteFailed, match="syncing the state to disk failed"):
        await store.on_disk()
    assert [str(e) for e in reported] == ["[Errno 5] Input/output error"]
    with pytest.raises(StateWriteFailed, match="an earlier commit or sync failed"):
        store.advance("f", 2)
    store.close()

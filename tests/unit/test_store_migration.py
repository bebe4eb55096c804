"""A state written by schema version 1 is migrated in place at the first start, losing nothing."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

from bot.store.db import Store
from bot.store.schema import SCHEMA_VERSION

V1 = Path(__file__).resolve().parents[1] / "fixtures" / "schema_v1.sql"  # the DDL of version 1, as released


def test_a_version_1_state_is_migrated_with_numbers_episodes_and_its_settlements(tmp_path: Path) -> None:
    path = tmp_path / "copybot.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(V1.read_text())
        db.execute("INSERT INTO meta VALUES ('schema_version', '1'), ('epoch', 'abc123')")
        db.execute(
            "INSERT INTO followers VALUES ('alice', 'active', '1000', '500', '1500', 3, 1000, 1, '', 'h', '0', 0)"
        )
        db.execute(
            "INSERT INTO followers VALUES ('bob', 'stopped_loss', '800', '0', '800', 2, 2000, 1, 'x', 'h', '0', 5000)"
        )
        db.execute(
            "INSERT INTO flows (follower, amount, reason, recorded_ms) VALUES ('alice', '1000', 'activation', 1000)"
        )
        db.execute("INSERT INTO cycles VALUES ('S6-1', 6000, 12000, 13000)")
        db.execute(
            "INSERT INTO settlements VALUES ('S6-1', 'alice', '1000', '990', '0', '0', '0', '-10', '10.00', '0', '0',"
            " 0, 13000)"
        )
        db.execute(
            "INSERT INTO transfers VALUES ('st-abc123-S61-1a2b-c', 'S6-1', 'alice', 'compensation', 'lead', 'alice',"
            " '10.00', 'pending', NULL, NULL, 1, 13000)"
        )
    store = Store(path)
    try:
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION) and store.epoch == "abc123"
        alice, bob = store.follower("alice"), store.follower("bob")
        assert alice is not None and bob is not None
        assert (alice.number, alice.episode, alice.reserve) == (1, 1, Decimal(500))
        assert (bob.number, bob.state) == (2, "stopped_loss")
        episodes = store.settlement.episodes_overlapping(0, 10**13)
        assert [(e.follower, e.episode, e.start_copy_equity, e.ended_ms) for e in episodes] == [
            ("alice", 1, Decimal(1000), None),
            ("bob", 1, Decimal(800), 5000),
        ]
        (row,) = store.settlement.rows("S6-1")
        assert (row.episode, row.compensation) == (1, Decimal("10.00"))
        (transfer,) = store.settlement.transfers()
        assert (transfer.episode, transfer.status, transfer.attempts) == (1, "pending", 1)
        assert store.settlement.incomplete_cycles() == []  # settled in version 1: completed then
    finally:
        store.close()
    Store(path).close()  # opening a migrated state again changes nothing

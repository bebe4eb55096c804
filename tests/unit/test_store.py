"""The store's own guarantees: activation snapshots, plans journaled with their ids, outcomes applied once."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from bot.core.model import Intent, Leg
from bot.store.db import Store

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
    store.record_plans([("f", "c", 1, [(intent, "cb-x-1")], (), 5)])
    (row,) = store.unresolved_intents("f")
    assert row.client_order_id == "cb-x-1" and row.status == "pending"
    epoch = store.epoch
    store.close()
    reopened = Store(path)  # a restart sees the same pending intent and the same epoch
    assert reopened.epoch == epoch
    (row,) = reopened.unresolved_intents("f")
    reopened.record_outcome(row, "filled", "42", D("0.2"), D(3000), 6)
    reopened.record_outcome(row, "filled", "42", D("0.2"), D(3000), 7)  # applied once: the row is final now
    assert reopened.follower_positions("f") == {"ETHUSDT": D("0.2")}
    assert reopened.unresolved_intents("f") == []

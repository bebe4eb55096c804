"""Plans and their intents (each with its client order id), orders' outcomes, fills and what they add up to."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from decimal import Decimal

from bot.core.model import (
    ZERO,
    Intent,
    IntentStatus,
    Leg,
    PlanKind,
    PlanRecord,
)
from bot.core.risk import FillSums
from bot.store.connection import StateConnection
from bot.store.rows import INTENT_SELECT, IntentRow, KeptFills, decimal_or_none
from bot.store.schema import OPEN_SQL


def insert_plans(db: sqlite3.Connection, plans: Sequence[PlanRecord]) -> list[list[IntentRow]]:
    """Plans' rows (each plan, its intents pending, its skips) in the transaction `db`, a statement per table for
    them all (a fan-out's chunk); returns each plan's intents. The intents' ids are assigned here, after the
    highest ever used (AUTOINCREMENT's own counter): `db` holds the write lock, nothing else inserts meanwhile."""
    (highest,) = db.execute(
        "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name='intents'), 0),"
        " COALESCE((SELECT MAX(id) FROM intents), 0))"
    ).fetchone()
    next_id = int(highest) + 1
    db.executemany(
        "INSERT INTO plans VALUES (?, ?, ?, ?)", [(p.follower, p.kind, p.number, p.planned_ms) for p in plans]
    )
    values: list[tuple[object, ...]] = []
    planned: list[list[IntentRow]] = []
    for plan in plans:
        follower, kind, seq, now_ms = plan.follower, plan.kind, plan.number, plan.planned_ms
        rows = []
        for idx, (intent, cid) in enumerate(plan.intents):
            values.append(
                (next_id, follower, kind, seq, idx, intent.leg.value, intent.symbol, intent.side, str(intent.qty),
                 int(intent.reduce_only), cid, now_ms, now_ms)
            )  # fmt: skip
            rows.append(
                IntentRow(next_id, follower, kind, seq, idx, intent, cid, IntentStatus.PENDING, None, ZERO, None, None)
            )
            next_id += 1
        planned.append(rows)
    db.executemany(
        "INSERT INTO intents (id, follower, kind, seq, idx, leg, symbol, side, qty, reduce_only, client_order_id,"
        " status, created_ms, updated_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,'pending',?,?)",
        values,
    )
    skips = [
        (p.follower, p.kind, p.number, s.event, s.symbol, json.dumps(s.detail), p.planned_ms)
        for p in plans
        for s in p.skips
    ]
    if skips:
        db.executemany(
            "INSERT INTO skips (follower, kind, seq, event, symbol, detail, recorded_ms) VALUES (?,?,?,?,?,?,?)",
            skips,
        )
    return planned


class OrderBook(StateConnection):
    """Plans, intents and their outcomes, fills, skips and spot reserves."""

    def has_plan(self, follower: str, kind: PlanKind, seq: int) -> bool:
        return (
            self._db.execute(
                "SELECT 1 FROM plans WHERE follower=? AND kind=? AND seq=?", (follower, kind, seq)
            ).fetchone()
            is not None
        )

    def planned(self, kind: PlanKind, seq: int) -> set[str]:
        """The followers with a plan of this kind and number (one query for a fan-out)."""
        return {r[0] for r in self._db.execute("SELECT follower FROM plans WHERE kind=? AND seq=?", (kind, seq))}

    def followers_with_open_intents(self) -> set[str]:
        """The followers with an intent not final yet (one query for a fan-out)."""
        query = f"SELECT DISTINCT follower FROM intents WHERE {OPEN_SQL}"
        return {r[0] for r in self._db.execute(query)}

    def record_plans(self, plans: list[PlanRecord], synced: bool = True) -> list[list[IntentRow]]:
        """Plans (intents with their client order ids, and skips) before anything is sent: several followers'
        in one durable commit (group commit: one fsync for many). Returns each plan's intent rows. `synced=False`:
        committed, and on disk once `on_disk()` returns (nothing of them is sent before)."""
        with self.transaction(durable=True, synced=synced) as db:
            return insert_plans(db, plans)

    def _intent_rows(self, where: str, args: tuple[object, ...]) -> list[IntentRow]:
        query = INTENT_SELECT + where + " ORDER BY id"  # `where` is always one of this module's literals
        rows = self._db.execute(query, args)
        return [
            IntentRow(
                r[0],
                r[1],
                PlanKind(r[2]),
                r[3],
                r[4],
                Intent(Leg(r[5]), r[6], r[7], Decimal(r[8]), bool(r[9])),
                r[10],
                IntentStatus(r[11]),
                r[12],
                Decimal(r[13]),
                decimal_or_none(r[14]),
                r[15],
            )
            for r in rows
        ]

    def intents_of(self, follower: str, kind: PlanKind, seq: int) -> list[IntentRow]:
        return self._intent_rows("follower=? AND kind=? AND seq=?", (follower, kind, seq))

    def unresolved_intents(self, follower: str) -> list[IntentRow]:
        return self._intent_rows(f"follower=? AND {OPEN_SQL}", (follower,))

    def all_intents(self, follower: str | None = None) -> list[IntentRow]:
        if follower is None:
            return self._intent_rows("1=1", ())
        return self._intent_rows("follower=?", (follower,))

    def mark_unknown(self, intent_id: int, error: str, now_ms: int) -> None:
        self.write("UPDATE intents SET status='unknown', error=?, updated_ms=? WHERE id=?", (error, now_ms, intent_id))

    def mark_working(self, intent_id: int, order_id: str, now_ms: int) -> None:
        self.write(
            "UPDATE intents SET status='working', order_id=?, error=NULL, updated_ms=? WHERE id=?",
            (order_id, now_ms, intent_id),
        )

    def mark_rejected(self, intent_id: int, error: str, now_ms: int) -> None:
        self.write("UPDATE intents SET status='rejected', error=?, updated_ms=? WHERE id=?", (error, now_ms, intent_id))

    def record_outcome(
        self,
        row: IntentRow,
        status: IntentStatus,
        order_id: str,
        filled: Decimal,
        avg_price: Decimal | None,
        now_ms: int,
        update_position: bool = True,
        fee_base: Decimal = ZERO,
        fee_quote: Decimal = ZERO,
    ) -> None:
        """An order's final outcome and its fill, with the follower's expected position, in one transaction.
        On spot a fee charged in the asset bought (`fee_base`) is not in the holding: the position moves by the
        fill less it."""
        signed = filled if row.intent.side == "buy" else -filled
        symbol = row.intent.symbol
        fill_id: int | None = None
        amount: Decimal | None = None
        with self.transaction() as db:
            updated = db.execute(
                "UPDATE intents SET status=?, order_id=?, filled=?, avg_price=?, error=NULL, updated_ms=?"
                f" WHERE id=? AND {OPEN_SQL}",
                (status, order_id, str(filled), None if avg_price is None else str(avg_price), now_ms, row.id),
            ).rowcount
            if not updated:
                return  # already final: an outcome is applied once
            if filled:
                fill_id = db.execute(
                    "INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        row.follower,
                        row.client_order_id,
                        order_id,
                        symbol,
                        str(signed),
                        str(avg_price or 0),
                        now_ms,
                        str(fee_base),
                        str(fee_quote),
                    ),
                ).lastrowid
            if filled and update_position:
                held = self._positions.get(row.follower)  # every position not flat, when kept
                if held is not None:
                    current = held.get(symbol, ZERO)
                else:
                    found = db.execute(
                        "SELECT amount FROM follower_positions WHERE follower=? AND symbol=?", (row.follower, symbol)
                    ).fetchone()
                    current = Decimal(found[0]) if found else ZERO
                amount = current + signed - fee_base
                db.execute(
                    "INSERT INTO follower_positions VALUES (?, ?, ?) ON CONFLICT(follower, symbol)"
                    " DO UPDATE SET amount=excluded.amount",
                    (row.follower, symbol, str(amount)),
                )
        # committed: the kept copies follow (written through, not read again)
        kept = self._fills.get(row.follower)
        if fill_id is not None and kept is not None:
            kept.append(fill_id, symbol, signed, avg_price or ZERO, now_ms)
        held = self._positions.get(row.follower)
        if amount is not None and held is not None:
            if amount:
                held[symbol] = amount
            else:
                held.pop(symbol, None)

    def last_fill(self, follower: str) -> int:
        """The position of the follower's latest fill in the journal (0: none yet)."""
        row = self._db.execute("SELECT COALESCE(MAX(rowid), 0) FROM fills WHERE follower=?", (follower,)).fetchone()
        return int(row[0])

    def fills_since(self, follower: str, after: int) -> list[tuple[str, Decimal, Decimal, int]]:
        """(symbol, signed quantity, price, recorded ms) of the follower's fills journaled after position `after`."""
        return [(s, q, p, t) for _, s, q, p, t in self._kept_fills(follower, after).fills]

    def fill_sums_since(self, follower: str, after: int) -> Mapping[str, FillSums]:
        """The same fills summed per symbol: what the copy equity estimate reads on every lead change."""
        return self._kept_fills(follower, after).sums

    def _kept_fills(self, follower: str, after: int) -> KeptFills:
        """The estimate asks always from the follower's last account read: the fills since are kept (and
        appended to by `record_outcome`), those before it dropped."""
        kept = self._fills.get(follower)
        if kept is None or after < kept.floor:
            rows = self._db.execute(
                "SELECT rowid, symbol, signed_qty, price, recorded_ms FROM fills WHERE follower=? AND rowid > ?"
                " ORDER BY rowid",
                (follower, after),
            )
            kept = KeptFills(after, [(int(i), s, Decimal(q), Decimal(p), int(t)) for i, s, q, p, t in rows])
        elif after > kept.floor:
            kept = kept.after(after)
        self._fills[follower] = kept
        return kept

    def traded_symbols(self, follower: str) -> set[str]:
        """Every market the follower has a fill in."""
        return {s for (s,) in self._db.execute("SELECT DISTINCT symbol FROM fills WHERE follower=?", (follower,))}

    def cash_flows_since(self, follower: str, after: int) -> Decimal:
        """Spot: what the follower's fills journaled after position `after` did to its USDT: a buy pays its cost,
        a sale receives its proceeds, less fees charged in USDT."""
        rows = self._db.execute(
            "SELECT signed_qty, price, fee_quote FROM fills WHERE follower=? AND rowid > ?", (follower, after)
        )
        return sum((-Decimal(q) * Decimal(p) - Decimal(f) for q, p, f in rows), ZERO)

    def spot_reserve(self, follower: str) -> dict[str, Decimal]:
        """Spot: the assets the follower's account held at copy start (SPEC 11), by asset; never sold."""
        rows = self._db.execute("SELECT asset, amount FROM spot_reserves WHERE follower=?", (follower,))
        return {a: Decimal(q) for a, q in rows}

    def set_spot_reserve(self, follower: str, reserve: dict[str, Decimal]) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM spot_reserves WHERE follower=?", (follower,))
            db.executemany(
                "INSERT INTO spot_reserves VALUES (?, ?, ?)",
                [(follower, a, str(q)) for a, q in sorted(reserve.items())],
            )

    def skips(self, follower: str) -> list[tuple[int, str, str]]:
        return list(self._db.execute("SELECT seq, event, symbol FROM skips WHERE follower=? ORDER BY id", (follower,)))

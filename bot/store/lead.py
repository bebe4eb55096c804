"""The lead's side of the state: its known positions (the baseline changes are measured from) and its numbered
changes."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from bot.core.model import (
    LeadChange,
)
from bot.store.connection import StateConnection
from bot.store.rows import StoredChange, decimal_or_none


class LeadBook(StateConnection):
    """The lead's known positions and its changes, numbered in the order they were seen."""

    def lead_positions(self) -> dict[str, tuple[Decimal, Decimal]]:
        rows = self._db.execute("SELECT symbol, amount, entry_price FROM lead_positions")
        return {s: (Decimal(a), Decimal(e)) for s, a, e in rows if Decimal(a) != 0}

    def set_lead_baseline(self, positions: dict[str, tuple[Decimal, Decimal]], now_ms: int) -> None:
        """The lead's positions at the very first start: the state changes are measured from."""
        with self.transaction() as db:
            db.execute("DELETE FROM lead_positions")
            db.executemany(
                "INSERT INTO lead_positions VALUES (?, ?, ?, ?)",
                [(s, str(a), str(e), now_ms) for s, (a, e) in positions.items()],
            )
            db.execute("INSERT INTO meta VALUES ('lead_baseline_ms', ?) ON CONFLICT(key) DO NOTHING", (str(now_ms),))

    def reset_lead(self, name: str) -> None:
        """A new lead starts from nothing: its own baseline and equity at the next start, none of the old one's."""
        with self.transaction(durable=True) as db:
            db.execute("DELETE FROM lead_positions")
            db.execute("DELETE FROM equity WHERE account='lead'")
            db.execute("DELETE FROM meta WHERE key IN ('lead_baseline_ms', 'lead_gone')")
            db.execute(
                "INSERT INTO meta VALUES ('lead_name', ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", (name,)
            )

    def has_lead_baseline(self) -> bool:
        return self.get_meta("lead_baseline_ms") is not None

    def record_lead_changes(
        self,
        changes: Iterable[tuple[str, Decimal, Decimal, Decimal, Decimal, Decimal | None]],
        lead_equity: Decimal,
        now_ms: int,
    ) -> list[StoredChange]:
        """Numbers and stores lead changes `(symbol, prev, now, entry_prev, entry_now, fill_price)` and moves
        the lead's known positions to them, in one transaction."""
        stored = []
        with self.transaction() as db:
            for symbol, prev, now, entry_prev, entry_now, fill in changes:
                cur = db.execute(
                    "INSERT INTO lead_changes (symbol, prev, now, entry_prev, entry_now, fill_price, lead_equity,"
                    " detected_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        symbol,
                        str(prev),
                        str(now),
                        str(entry_prev),
                        str(entry_now),
                        None if fill is None else str(fill),
                        str(lead_equity),
                        now_ms,
                    ),
                )
                db.execute(
                    "INSERT INTO lead_positions VALUES (?, ?, ?, ?) ON CONFLICT(symbol) DO UPDATE SET"
                    " amount=excluded.amount, entry_price=excluded.entry_price, updated_ms=excluded.updated_ms",
                    (symbol, str(now), str(entry_now), now_ms),
                )
                seq = cur.lastrowid
                assert seq is not None
                stored.append(StoredChange(LeadChange(seq, symbol, prev, now, fill), lead_equity, now_ms))
        return stored

    def changes_after(self, seq: int, limit: int = 1000) -> list[StoredChange]:
        rows = self._db.execute(
            "SELECT seq, symbol, prev, now, fill_price, lead_equity, detected_ms FROM lead_changes WHERE seq > ?"
            " ORDER BY seq LIMIT ?",
            (seq, limit),
        )
        return [
            StoredChange(LeadChange(s, sym, Decimal(p), Decimal(n), decimal_or_none(f)), Decimal(eq), ms)
            for s, sym, p, n, f, eq, ms in rows
        ]

    def last_seq(self) -> int:
        row = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM lead_changes").fetchone()
        return int(row[0])

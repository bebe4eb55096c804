"""Accounts' equity as last read, and each follower's equity base (what its copy equity is estimated from)."""

from __future__ import annotations

import json
from decimal import Decimal

from bot.core.model import (
    EquityBase,
)
from bot.store.connection import StateConnection


class EquityBook(StateConnection):
    """Equity as last read, per account, and each follower's equity base."""

    def record_equity(self, account: str, equity: Decimal, now_ms: int) -> None:
        self.write(
            "INSERT INTO equity VALUES (?, ?, ?) ON CONFLICT(account) DO UPDATE SET"
            " equity=excluded.equity, recorded_ms=excluded.recorded_ms",
            (account, str(equity), now_ms),
        )

    def save_equity_base(self, follower: str, base: EquityBase) -> None:
        """The last REST read of a follower's account (and the estimate's starting point), kept across restarts
        so that a restart needs no read per follower before it can size and check stop losses; its equity is
        also the account's last known one (`equity`), in the same commit."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO equity VALUES (?, ?, ?) ON CONFLICT(account) DO UPDATE SET"
                " equity=excluded.equity, recorded_ms=excluded.recorded_ms",
                (follower, str(base.account_equity), base.read_ms),
            )
            db.execute(
                "INSERT OR REPLACE INTO equity_bases VALUES (?, ?, ?, ?, ?, ?)",
                (
                    follower,
                    str(base.account_equity),
                    json.dumps({s: str(q) for s, q in base.positions.items()}),
                    json.dumps({s: str(p) for s, p in base.marks.items()}),
                    base.last_fill,
                    base.read_ms,
                ),
            )

    def equity_base(self, follower: str) -> EquityBase | None:
        row = self._db.execute(
            "SELECT account_equity, positions, marks, last_fill, read_ms FROM equity_bases WHERE follower=?",
            (follower,),
        ).fetchone()
        if row is None:
            return None
        positions = {s: Decimal(q) for s, q in json.loads(row[1]).items()}
        marks = {s: Decimal(p) for s, p in json.loads(row[2]).items()}
        return EquityBase(Decimal(row[0]), positions, marks, int(row[3]), int(row[4]))

    def equity(self, account: str) -> tuple[Decimal, int] | None:
        row = self._db.execute("SELECT equity, recorded_ms FROM equity WHERE account=?", (account,)).fetchone()
        return None if row is None else (Decimal(row[0]), int(row[1]))

"""Followers' rows: activation episodes, states and close-outs, investment flows, expected positions, the symbols
they leave alone, and the leverage set per symbol."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from decimal import Decimal

from bot.core.model import (
    ZERO,
    FollowerState,
    Intent,
    PlanKind,
    PlanRecord,
)
from bot.store.orders import OrderBook, insert_plans
from bot.store.rows import FOLLOWER_SELECT, FollowerRow, IntentRow, follower_row
from bot.store.schema import OPEN_SQL


class FollowerBook(OrderBook):
    """(Uses the order book's intents: a close-out abandons them, an investment decrease journals its plan.)"""

    def follower(self, name: str) -> FollowerRow | None:
        cached = self._rows.get(name)
        if cached is not None:
            return cached
        row = self._db.execute(FOLLOWER_SELECT + " WHERE name=?", (name,)).fetchone()
        if row is None:
            return None
        self._rows[name] = found = follower_row(row)
        return found

    def followers(self) -> list[FollowerRow]:
        """Every follower's row, in one query (kept for the reads after it)."""
        rows = [follower_row(r) for r in self._db.execute(FOLLOWER_SELECT + " ORDER BY rowid")]
        self._rows.update((row.name, row) for row in rows)
        return rows

    def activate_follower(
        self,
        name: str,
        investment: Decimal,
        account_equity: Decimal,
        copy_existing: bool,
        now_ms: int,
        config_hash: str = "",
    ) -> FollowerRow:
        """(Re)activation, in one transaction: a new episode, reserve = equity now − investment (never below 0),
        progress from the latest lead change, and the lead's positions at that very point, which are what
        `copy_existing` copies (or, when false, the symbols left alone until the lead is flat in them)."""
        reserve = max(ZERO, account_equity - investment)
        with self.transaction(durable=True, changes=name) as db:
            last_seq = db.execute("SELECT COALESCE(MAX(seq), 0) FROM lead_changes").fetchone()[0]
            lead = [(s, a) for s, a in db.execute("SELECT symbol, amount FROM lead_positions") if Decimal(a) != 0]
            self._ensure_row(db, name, investment, config_hash, now_ms)
            episode = db.execute("SELECT episode + 1 FROM followers WHERE name=?", (name,)).fetchone()[0]
            db.execute("DELETE FROM follower_bootstrap WHERE follower=?", (name,))
            db.execute("DELETE FROM follower_ignored WHERE follower=?", (name,))
            db.execute("DELETE FROM follower_positions WHERE follower=?", (name,))
            db.execute(
                "UPDATE followers SET state='active', investment=?, reserve=?, start_equity=?, last_seq=?,"
                " activated_ms=?, bootstrapped=0, state_reason='', config_hash=?, pending_increase='0', ended_ms=0,"
                " episode=?, closing_to='' WHERE name=?",
                (str(investment), str(reserve), str(account_equity), last_seq, now_ms, config_hash, episode, name),
            )
            db.execute("INSERT INTO episodes VALUES (?, ?, ?, ?, NULL, NULL)", (name, episode, now_ms, str(investment)))
            if copy_existing:
                db.executemany("INSERT INTO follower_bootstrap VALUES (?, ?, ?)", [(name, s, a) for s, a in lead])
            else:
                db.executemany("INSERT INTO follower_ignored VALUES (?, ?)", [(name, s) for s, _ in lead])
            db.execute(
                "INSERT INTO flows (follower, amount, reason, recorded_ms, reserve_after, episode)"
                " VALUES (?, ?, 'activation', ?, ?, ?)",
                (name, str(investment), now_ms, str(reserve), episode),
            )
        row = self.follower(name)
        assert row is not None
        return row

    @staticmethod
    def _ensure_row(db: sqlite3.Connection, name: str, investment: Decimal, config_hash: str, now_ms: int) -> None:
        """A follower's row, created once with the next follower number (numbers are never reused)."""
        db.execute(
            "INSERT INTO followers (name, state, investment, reserve, start_equity, last_seq, activated_ms,"
            " config_hash, number) VALUES (?, 'pending_capacity', ?, '0', '0', 0, ?, ?,"
            " (SELECT COALESCE(MAX(number), 0) + 1 FROM followers)) ON CONFLICT(name) DO NOTHING",
            (name, str(investment), now_ms, config_hash),
        )

    def register_waiting(self, name: str, investment: Decimal, config_hash: str, now_ms: int) -> None:
        """A follower waiting for capacity (or a configuration change after a stop): recorded, not copying."""
        with self.transaction(changes=name) as db:
            self._ensure_row(db, name, investment, config_hash, now_ms)
            db.execute(
                "UPDATE followers SET state='pending_capacity', investment=?, config_hash=? WHERE name=?",
                (str(investment), config_hash, name),
            )

    def set_config_hash(self, name: str, config_hash: str) -> None:
        with self.transaction(changes=name) as db:
            db.execute("UPDATE followers SET config_hash=? WHERE name=?", (config_hash, name))

    def begin_close_out(self, name: str, final_state: FollowerState, reason: str, now_ms: int) -> list[IntentRow]:
        """Stops copying to a follower (stop loss, removal, lead gone): it is `closing` until its account is flat,
        and every intent not yet final is abandoned (never sent again: the close-out reads the account and
        closes what is there). One durable transaction; returns the intents abandoned."""
        abandoned = self.unresolved_intents(name)
        with self.transaction(durable=True, changes=name) as db:
            db.execute(
                "UPDATE followers SET state='closing', closing_to=?, state_reason=? WHERE name=?",
                (final_state, reason, name),
            )
            db.execute(
                "UPDATE intents SET status='abandoned', error='abandoned by a close-out', updated_ms=?"
                f" WHERE follower=? AND {OPEN_SQL}",
                (now_ms, name),
            )
        return abandoned

    def finish_close_out(self, name: str, account_equity: Decimal, now_ms: int) -> FollowerRow:
        """The account is flat: the follower takes its final state and its episode ends with the copy equity
        of this moment (its settlement E_end)."""
        with self.transaction(durable=True, changes=name) as db:
            episode, reserve = db.execute("SELECT episode, reserve FROM followers WHERE name=?", (name,)).fetchone()
            db.execute(
                "UPDATE followers SET state=closing_to, closing_to='', ended_ms=? WHERE name=? AND state='closing'",
                (now_ms, name),
            )
            db.execute("DELETE FROM follower_positions WHERE follower=?", (name,))
            db.execute(
                "UPDATE episodes SET ended_ms=?, end_copy_equity=? WHERE follower=? AND episode=? AND ended_ms IS NULL",
                (now_ms, str(account_equity - Decimal(reserve)), name, episode),
            )
        row = self.follower(name)
        assert row is not None
        return row

    def end_unmanaged(self, name: str, reason: str, now_ms: int) -> None:
        """A follower removed while the daemon was down: ended, its episode closed without a final equity
        (its keys are gone), so that its settlement is reported as unreachable."""
        with self.transaction(changes=name) as db:
            db.execute(
                "UPDATE followers SET state='ended', closing_to='', state_reason=?, ended_ms=? WHERE name=?",
                (reason, now_ms, name),
            )
            db.execute("UPDATE episodes SET ended_ms=? WHERE follower=? AND ended_ms IS NULL", (now_ms, name))

    def set_email(self, name: str, email: str) -> None:
        """Kept for settlement transfers owed to a follower after it leaves the configuration."""
        with self.transaction(changes=name) as db:
            db.execute("UPDATE followers SET email=? WHERE name=? AND email != ?", (email, name, email))

    def email(self, name: str) -> str:
        row = self._db.execute("SELECT email FROM followers WHERE name=?", (name,)).fetchone()
        return str(row[0]) if row else ""

    def change_investment(
        self,
        name: str,
        new_investment: Decimal,
        kind: PlanKind,
        seq: int,
        intents: list[tuple[Intent, str]],
        now_ms: int,
    ) -> Decimal:
        """Applies an investment change: the reserve moves the other way, the change is a flow, and a decrease's
        releasing orders are journaled with it. Returns the flow (+ top-up, − withdrawal)."""
        with self.transaction(durable=True, changes=name) as db:
            old = Decimal(db.execute("SELECT investment FROM followers WHERE name=?", (name,)).fetchone()[0])
            flow = new_investment - old
            db.execute(
                "UPDATE followers SET investment=?, reserve=MAX(0, reserve - ?), pending_increase='0' WHERE name=?",
                (str(new_investment), str(flow), name),
            )
            reserve, episode = db.execute("SELECT reserve, episode FROM followers WHERE name=?", (name,)).fetchone()
            db.execute(
                "INSERT INTO flows (follower, amount, reason, recorded_ms, reserve_after, episode)"
                " VALUES (?, ?, 'investment', ?, ?, ?)",
                (name, str(flow), now_ms, reserve, episode),
            )
            if intents:
                insert_plans(db, [PlanRecord(name, kind, seq, intents, (), now_ms)])
        return flow

    def set_pending_increase(self, name: str, amount: Decimal) -> None:
        with self.transaction(changes=name) as db:
            db.execute("UPDATE followers SET pending_increase=? WHERE name=?", (str(amount), name))

    def flows(self, name: str) -> list[tuple[Decimal, str]]:
        rows = self._db.execute("SELECT amount, reason FROM flows WHERE follower=? ORDER BY id", (name,))
        return [(Decimal(a), r) for a, r in rows]

    def bootstrap_positions(self, name: str) -> dict[str, Decimal]:
        """The lead's positions when this follower was activated (what copy_existing copies)."""
        rows = self._db.execute("SELECT symbol, amount FROM follower_bootstrap WHERE follower=?", (name,))
        return {s: Decimal(a) for s, a in rows}

    def set_follower_state(self, name: str, state: FollowerState, reason: str = "") -> None:
        with self.transaction(changes=name) as db:
            db.execute("UPDATE followers SET state=?, state_reason=? WHERE name=?", (state, reason, name))

    def mark_bootstrapped(self, name: str) -> None:
        with self.transaction(changes=name) as db:
            db.execute("UPDATE followers SET bootstrapped=1 WHERE name=?", (name,))

    def advance(self, name: str, seq: int, unignore: str | None = None) -> None:
        """The follower has copied up to lead change `seq` (and leaves `unignore` alone no more, in the same
        change). Its kept row follows (every change copied writes this: its row is not read again for it)."""
        progress = ("UPDATE followers SET last_seq=? WHERE name=? AND last_seq < ?", (seq, name, seq))
        if unignore is None:
            moved = self.write(*progress)
        else:
            with self.transaction() as db:
                moved = db.execute(*progress)
                db.execute("DELETE FROM follower_ignored WHERE follower=? AND symbol=?", (name, unignore))
        kept = self._rows.get(name)
        if moved.rowcount and kept is not None:
            self._rows[name] = replace(kept, last_seq=seq)

    def ignoring(self, symbol: str) -> set[str]:
        """The followers that leave `symbol` alone until the lead is flat in it (one query for a fan-out)."""
        return {r[0] for r in self._db.execute("SELECT follower FROM follower_ignored WHERE symbol=?", (symbol,))}

    def ignored(self, name: str) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT symbol FROM follower_ignored WHERE follower=?", (name,))}

    def follower_positions(self, name: str) -> dict[str, Decimal]:
        """The follower's expected positions (what its own fills add up to), not flat ones."""
        cached = self._positions.get(name)
        if cached is None:
            rows = self._db.execute("SELECT symbol, amount FROM follower_positions WHERE follower=?", (name,))
            self._positions[name] = cached = {s: Decimal(a) for s, a in rows if Decimal(a) != 0}
        return dict(cached)

    def leverage_set(self, name: str, symbol: str) -> Decimal | None:
        """The leverage last set on the follower's account in `symbol` (asked before every opening order: kept
        per follower from one read, and written through by `record_leverage`, the only writer)."""
        kept = self._leverage.get(name)
        if kept is None:
            rows = self._db.execute("SELECT symbol, leverage FROM follower_leverage WHERE follower=?", (name,))
            self._leverage[name] = kept = {s: Decimal(v) for s, v in rows}
        return kept.get(symbol)

    def record_leverage(self, name: str, symbol: str, leverage: Decimal) -> None:
        try:
            with self.transaction() as db:
                db.execute(
                    "INSERT INTO follower_leverage VALUES (?, ?, ?) ON CONFLICT(follower, symbol) DO UPDATE"
                    " SET leverage=excluded.leverage",
                    (name, symbol, str(leverage)),
                )
        finally:
            self._leverage.pop(name, None)  # read again next time, whether it was written or not

    def set_follower_position(self, follower: str, symbol: str, amount: Decimal) -> None:
        with self.transaction(changes=follower) as db:
            db.execute(
                "INSERT INTO follower_positions VALUES (?, ?, ?) ON CONFLICT(follower, symbol)"
                " DO UPDATE SET amount=excluded.amount",
                (follower, symbol, str(amount)),
            )

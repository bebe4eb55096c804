"""Durable state in SQLite (WAL, synchronous=FULL): one transaction per state change.

Everything a restart needs is here before the action it describes: a lead change before it is copied,
an intent (with its client order id) before its order is sent, an order's outcome before the next step.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.core.model import (
    OPEN_STATUSES,
    ZERO,
    EquityBase,
    FollowerState,
    Intent,
    IntentStatus,
    LeadChange,
    Leg,
    PlanKind,
    PlanRecord,
)
from bot.store.settlement import SettlementBook

SCHEMA_VERSION = 3

# an intent not final yet (OPEN_STATUSES) in SQL: the partial index below and the queries it serves say it alike
OPEN_SQL = "status IN ({})".format(",".join(f"'{status}'" for status in OPEN_STATUSES))

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS lead_positions (
    symbol TEXT PRIMARY KEY, amount TEXT NOT NULL, entry_price TEXT NOT NULL, updated_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS lead_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, symbol TEXT NOT NULL, prev TEXT NOT NULL, now TEXT NOT NULL,
    entry_prev TEXT NOT NULL, entry_now TEXT NOT NULL, fill_price TEXT, lead_equity TEXT NOT NULL,
    detected_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS followers (
    name TEXT PRIMARY KEY, state TEXT NOT NULL, investment TEXT NOT NULL, reserve TEXT NOT NULL,
    start_equity TEXT NOT NULL, last_seq INTEGER NOT NULL, activated_ms INTEGER NOT NULL,
    bootstrapped INTEGER NOT NULL DEFAULT 0, state_reason TEXT NOT NULL DEFAULT '',
    config_hash TEXT NOT NULL DEFAULT '', pending_increase TEXT NOT NULL DEFAULT '0',
    ended_ms INTEGER NOT NULL DEFAULT 0, number INTEGER NOT NULL DEFAULT 0, episode INTEGER NOT NULL DEFAULT 0,
    closing_to TEXT NOT NULL DEFAULT '', email TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS episodes (
    follower TEXT NOT NULL, episode INTEGER NOT NULL, activated_ms INTEGER NOT NULL, start_copy_equity TEXT NOT NULL,
    ended_ms INTEGER, end_copy_equity TEXT, PRIMARY KEY (follower, episode));
CREATE TABLE IF NOT EXISTS flows (
    id INTEGER PRIMARY KEY AUTOINCREMENT, follower TEXT NOT NULL, amount TEXT NOT NULL, reason TEXT NOT NULL,
    recorded_ms INTEGER NOT NULL, reserve_after TEXT, episode INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS follower_positions (
    follower TEXT NOT NULL, symbol TEXT NOT NULL, amount TEXT NOT NULL, PRIMARY KEY (follower, symbol));
CREATE TABLE IF NOT EXISTS follower_ignored (
    follower TEXT NOT NULL, symbol TEXT NOT NULL, PRIMARY KEY (follower, symbol));
CREATE TABLE IF NOT EXISTS follower_bootstrap (
    follower TEXT NOT NULL, symbol TEXT NOT NULL, amount TEXT NOT NULL, PRIMARY KEY (follower, symbol));
CREATE TABLE IF NOT EXISTS follower_leverage (
    follower TEXT NOT NULL, symbol TEXT NOT NULL, leverage TEXT NOT NULL, PRIMARY KEY (follower, symbol));
CREATE TABLE IF NOT EXISTS plans (
    follower TEXT NOT NULL, kind TEXT NOT NULL, seq INTEGER NOT NULL, planned_ms INTEGER NOT NULL,
    PRIMARY KEY (follower, kind, seq));
CREATE TABLE IF NOT EXISTS intents (
    id INTEGER PRIMARY KEY AUTOINCREMENT, follower TEXT NOT NULL, kind TEXT NOT NULL, seq INTEGER NOT NULL,
    idx INTEGER NOT NULL, leg TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL, qty TEXT NOT NULL,
    reduce_only INTEGER NOT NULL, client_order_id TEXT NOT NULL, status TEXT NOT NULL,
    order_id TEXT, filled TEXT NOT NULL DEFAULT '0', avg_price TEXT, error TEXT,
    created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,
    UNIQUE (follower, client_order_id), UNIQUE (follower, kind, seq, idx));
CREATE TABLE IF NOT EXISTS fills (
    follower TEXT NOT NULL, client_order_id TEXT NOT NULL, order_id TEXT NOT NULL, symbol TEXT NOT NULL,
    signed_qty TEXT NOT NULL, price TEXT NOT NULL, recorded_ms INTEGER NOT NULL,
    fee_base TEXT NOT NULL DEFAULT '0', fee_quote TEXT NOT NULL DEFAULT '0', PRIMARY KEY (follower, order_id));
CREATE TABLE IF NOT EXISTS spot_reserves (
    follower TEXT NOT NULL, asset TEXT NOT NULL, amount TEXT NOT NULL, PRIMARY KEY (follower, asset));
CREATE TABLE IF NOT EXISTS skips (
    id INTEGER PRIMARY KEY AUTOINCREMENT, follower TEXT NOT NULL, kind TEXT NOT NULL, seq INTEGER NOT NULL,
    event TEXT NOT NULL, symbol TEXT NOT NULL, detail TEXT NOT NULL, recorded_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS cycles (
    id TEXT PRIMARY KEY, start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL, settled_ms INTEGER,
    completed_ms INTEGER);
CREATE TABLE IF NOT EXISTS boundary_equity (
    cycle TEXT NOT NULL, account TEXT NOT NULL, equity TEXT NOT NULL, copy_equity TEXT NOT NULL,
    taken_ms INTEGER NOT NULL, late INTEGER NOT NULL, PRIMARY KEY (cycle, account));
CREATE TABLE IF NOT EXISTS settlements (
    cycle TEXT NOT NULL, follower TEXT NOT NULL, e_start TEXT NOT NULL, e_end TEXT NOT NULL, flows TEXT NOT NULL,
    fees TEXT NOT NULL, funding TEXT NOT NULL, pnl TEXT NOT NULL, compensation TEXT NOT NULL,
    profit_share TEXT NOT NULL, fee_rebate TEXT NOT NULL, late INTEGER NOT NULL, recorded_ms INTEGER NOT NULL,
    episode INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (cycle, follower, episode));
CREATE TABLE IF NOT EXISTS transfers (
    client_tran_id TEXT PRIMARY KEY, cycle TEXT NOT NULL, follower TEXT NOT NULL, kind TEXT NOT NULL,
    from_account TEXT NOT NULL, to_account TEXT NOT NULL, amount TEXT NOT NULL, status TEXT NOT NULL,
    tran_id TEXT, error TEXT, attempts INTEGER NOT NULL DEFAULT 0, updated_ms INTEGER NOT NULL,
    episode INTEGER NOT NULL DEFAULT 0, next_attempt_ms INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS equity (
    account TEXT PRIMARY KEY, equity TEXT NOT NULL, recorded_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS equity_bases (
    follower TEXT PRIMARY KEY, account_equity TEXT NOT NULL, positions TEXT NOT NULL, marks TEXT NOT NULL,
    last_fill INTEGER NOT NULL, read_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS intents_open ON intents (follower) WHERE {OPEN_SQL};
CREATE INDEX IF NOT EXISTS plans_by_change ON plans (kind, seq);
"""

# version 1 -> 2: follower numbers (ids unique by construction), activation episodes, the reserve after each
# flow, closing states, transfer back-off, settlement rows per episode, emails kept for transfers
_MIGRATE_1_TO_2 = """
ALTER TABLE followers ADD COLUMN number INTEGER NOT NULL DEFAULT 0;
ALTER TABLE followers ADD COLUMN episode INTEGER NOT NULL DEFAULT 0;
ALTER TABLE followers ADD COLUMN closing_to TEXT NOT NULL DEFAULT '';
ALTER TABLE followers ADD COLUMN email TEXT NOT NULL DEFAULT '';
UPDATE followers SET number = rowid;
UPDATE followers SET episode = 1 WHERE state NOT IN ('pending_capacity', 'config_error') OR bootstrapped = 1;
INSERT INTO episodes SELECT f.name, 1, f.activated_ms,
    COALESCE((SELECT amount FROM flows WHERE follower = f.name AND reason = 'activation' ORDER BY id DESC LIMIT 1),
             f.investment),
    CASE WHEN f.state IN ('stopped_loss', 'ended') THEN f.ended_ms END, NULL
    FROM followers f WHERE f.episode = 1;
ALTER TABLE flows ADD COLUMN reserve_after TEXT;
ALTER TABLE flows ADD COLUMN episode INTEGER NOT NULL DEFAULT 1;
ALTER TABLE cycles ADD COLUMN completed_ms INTEGER;
UPDATE cycles SET completed_ms = settled_ms;
ALTER TABLE transfers ADD COLUMN episode INTEGER NOT NULL DEFAULT 1;
ALTER TABLE transfers ADD COLUMN next_attempt_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE settlements RENAME TO settlements_v1;
CREATE TABLE settlements (
    cycle TEXT NOT NULL, follower TEXT NOT NULL, e_start TEXT NOT NULL, e_end TEXT NOT NULL, flows TEXT NOT NULL,
    fees TEXT NOT NULL, funding TEXT NOT NULL, pnl TEXT NOT NULL, compensation TEXT NOT NULL,
    profit_share TEXT NOT NULL, fee_rebate TEXT NOT NULL, late INTEGER NOT NULL, recorded_ms INTEGER NOT NULL,
    episode INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (cycle, follower, episode));
INSERT INTO settlements SELECT *, 1 FROM settlements_v1;
DROP TABLE settlements_v1;
"""

# version 2 -> 3: spot fills keep the fee charged in the asset bought and in USDT (a copy holding is net of it)
_MIGRATE_2_TO_3 = """
ALTER TABLE fills ADD COLUMN fee_base TEXT NOT NULL DEFAULT '0';
ALTER TABLE fills ADD COLUMN fee_quote TEXT NOT NULL DEFAULT '0';
"""

_INTENT_SELECT = (
    "SELECT id, follower, kind, seq, idx, leg, symbol, side, qty, reduce_only, client_order_id, status,"
    " order_id, filled, avg_price, error FROM intents WHERE "
)


# (follower, kind, seq, intents with their client order ids, skips, planned ms)


@dataclass(frozen=True, slots=True)
class StoredChange:
    change: LeadChange
    lead_equity: Decimal
    detected_ms: int


@dataclass(frozen=True, slots=True)
class FollowerRow:
    name: str
    state: FollowerState
    investment: Decimal
    reserve: Decimal
    start_equity: Decimal
    last_seq: int
    activated_ms: int
    bootstrapped: bool
    state_reason: str
    config_hash: str
    pending_increase: Decimal
    number: int  # this follower's number in this state: in every client order and transfer id
    episode: int  # activations so far: each one is settled on its own (SPEC 7)
    closing_to: FollowerState | None  # while `closing`: the state it ends in once its account is flat


@dataclass(frozen=True, slots=True)
class IntentRow:
    id: int
    follower: str
    kind: PlanKind
    seq: int
    idx: int
    intent: Intent
    client_order_id: str
    status: IntentStatus
    order_id: str | None
    filled: Decimal
    avg_price: Decimal | None
    error: str | None


_FOLLOWER_SELECT = (
    "SELECT name, state, investment, reserve, start_equity, last_seq, activated_ms, bootstrapped, state_reason,"
    " config_hash, pending_increase, number, episode, closing_to FROM followers"
)


def _follower_row(r: tuple[Any, ...]) -> FollowerRow:
    return FollowerRow(
        r[0], FollowerState(r[1]), Decimal(r[2]), Decimal(r[3]), Decimal(r[4]), r[5], r[6], bool(r[7]), r[8], r[9],
        Decimal(r[10]), r[11], r[12], FollowerState(r[13]) if r[13] else None,
    )  # fmt: skip


def _d(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._durable = True
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)
        with self.transaction() as db:
            version = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if version is None:
                db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                db.execute("INSERT INTO meta VALUES ('epoch', ?)", (secrets.token_hex(3),))
            elif int(version[0]) > SCHEMA_VERSION:
                raise RuntimeError(f"{path} has schema version {version[0]}, newer than this bot ({SCHEMA_VERSION})")
            else:
                steps = {1: _MIGRATE_1_TO_2, 2: _MIGRATE_2_TO_3}
                for step in range(int(version[0]), SCHEMA_VERSION):
                    for statement in steps[step].split(";"):
                        if statement.strip():
                            db.execute(statement)
                db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
        self.epoch: str = self._db.execute("SELECT value FROM meta WHERE key='epoch'").fetchone()[0]
        self.settlement = SettlementBook(self)  # the settlement tables, on this connection
        # What every lead change reads for every follower, kept from the last read and written through by this
        # class's own methods (the only writer of these tables): a fan-out reads no row twice.
        self._rows: dict[str, FollowerRow] = {}
        self._positions: dict[str, dict[str, Decimal]] = {}
        self._fills: dict[str, tuple[int, list[tuple[int, str, Decimal, Decimal, int]]]] = {}  # (floor, tail)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self, durable: bool = False, changes: str | None = None) -> Iterator[sqlite3.Connection]:
        """One state change. `durable` commits are fsynced (synchronous=FULL): those that precede an action on
        an exchange (intents, close-outs, settlements). The others (outcomes, progress, snapshots) use
        synchronous=NORMAL: safe against a crash of the process, and since the WAL is sequential, the next
        durable commit makes them durable too; what a power cut could drop is re-derived (an intent still
        pending is looked up by its client order id). `changes`: the follower whose row or positions it writes
        (their kept copies are dropped, whether it commits or not)."""
        if durable != self._durable:
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._durable = durable
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            if changes is not None:
                self._changed(changes)

    # -- meta -------------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value)
            )

    # -- lead -------------------------------------------------------------------------------------

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
            StoredChange(LeadChange(s, sym, Decimal(p), Decimal(n), _d(f)), Decimal(eq), ms)
            for s, sym, p, n, f, eq, ms in rows
        ]

    def last_seq(self) -> int:
        row = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM lead_changes").fetchone()
        return int(row[0])

    # -- followers --------------------------------------------------------------------------------

    def follower(self, name: str) -> FollowerRow | None:
        cached = self._rows.get(name)
        if cached is not None:
            return cached
        row = self._db.execute(_FOLLOWER_SELECT + " WHERE name=?", (name,)).fetchone()
        if row is None:
            return None
        self._rows[name] = found = _follower_row(row)
        return found

    def _changed(self, name: str) -> None:
        """A write to the follower's row or positions: the next read goes to the database."""
        self._rows.pop(name, None)
        self._positions.pop(name, None)

    def followers(self) -> list[FollowerRow]:
        """Every follower's row, in one query (kept for the reads after it)."""
        rows = [_follower_row(r) for r in self._db.execute(_FOLLOWER_SELECT + " ORDER BY rowid")]
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
                self._insert_plan(db, PlanRecord(name, kind, seq, intents, (), now_ms))
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
        with self.transaction(changes=name) as db:
            db.execute("UPDATE followers SET last_seq=? WHERE name=? AND last_seq < ?", (seq, name, seq))
            if unignore is not None:
                db.execute("DELETE FROM follower_ignored WHERE follower=? AND symbol=?", (name, unignore))

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
        row = self._db.execute(
            "SELECT leverage FROM follower_leverage WHERE follower=? AND symbol=?", (name, symbol)
        ).fetchone()
        return None if row is None else Decimal(row[0])

    def record_leverage(self, name: str, symbol: str, leverage: Decimal) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO follower_leverage VALUES (?, ?, ?) ON CONFLICT(follower, symbol) DO UPDATE"
                " SET leverage=excluded.leverage",
                (name, symbol, str(leverage)),
            )

    # -- intents and orders -----------------------------------------------------------------------

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

    def record_plans(self, plans: list[PlanRecord]) -> list[list[IntentRow]]:
        """Plans (intents with their client order ids, and skips) before anything is sent: several followers'
        in one durable commit (group commit: one fsync for a whole fan-out). Returns each plan's intent rows."""
        with self.transaction(durable=True) as db:
            return [self._insert_plan(db, plan) for plan in plans]

    @staticmethod
    def _insert_plan(db: sqlite3.Connection, plan: PlanRecord) -> list[IntentRow]:
        follower, kind, seq, now_ms = plan.follower, plan.kind, plan.seq, plan.planned_ms
        db.execute("INSERT INTO plans VALUES (?, ?, ?, ?)", (follower, kind, seq, now_ms))
        rows = []
        for idx, (intent, cid) in enumerate(plan.intents):
            cur = db.execute(
                "INSERT INTO intents (follower, kind, seq, idx, leg, symbol, side, qty, reduce_only,"
                " client_order_id, status, created_ms, updated_ms) VALUES (?,?,?,?,?,?,?,?,?,?,'pending',?,?)",
                (
                    follower,
                    kind,
                    seq,
                    idx,
                    intent.leg.value,
                    intent.symbol,
                    intent.side,
                    str(intent.qty),
                    int(intent.reduce_only),
                    cid,
                    now_ms,
                    now_ms,
                ),
            )
            assert cur.lastrowid is not None
            pending = IntentRow(
                cur.lastrowid, follower, kind, seq, idx, intent, cid, IntentStatus.PENDING, None, ZERO, None, None
            )
            rows.append(pending)
        db.executemany(
            "INSERT INTO skips (follower, kind, seq, event, symbol, detail, recorded_ms) VALUES (?,?,?,?,?,?,?)",
            [(follower, kind, seq, s.event, s.symbol, json.dumps(s.detail), now_ms) for s in plan.skips],
        )
        return rows

    def _intent_rows(self, where: str, args: tuple[object, ...]) -> list[IntentRow]:
        query = _INTENT_SELECT + where + " ORDER BY id"  # `where` is always one of this module's literals
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
                _d(r[14]),
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
        with self.transaction() as db:
            db.execute(
                "UPDATE intents SET status='unknown', error=?, updated_ms=? WHERE id=?", (error, now_ms, intent_id)
            )

    def mark_working(self, intent_id: int, order_id: str, now_ms: int) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE intents SET status='working', order_id=?, error=NULL, updated_ms=? WHERE id=?",
                (order_id, now_ms, intent_id),
            )

    def mark_rejected(self, intent_id: int, error: str, now_ms: int) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE intents SET status='rejected', error=?, updated_ms=? WHERE id=?", (error, now_ms, intent_id)
            )

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
            kept[1].append((fill_id, symbol, signed, avg_price or ZERO, now_ms))
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
        """(symbol, signed quantity, price, recorded ms) of the follower's fills journaled after position `after`.
        The copy equity estimate asks this on every lead change, always from its last account read: the fills
        since are kept (and appended to by `record_outcome`), those before it dropped."""
        kept = self._fills.get(follower)
        if kept is None or after < kept[0]:
            rows = self._db.execute(
                "SELECT rowid, symbol, signed_qty, price, recorded_ms FROM fills WHERE follower=? AND rowid > ?"
                " ORDER BY rowid",
                (follower, after),
            )
            kept = (after, [(int(i), s, Decimal(q), Decimal(p), int(t)) for i, s, q, p, t in rows])
        elif after > kept[0]:
            kept = (after, [f for f in kept[1] if f[0] > after])
        self._fills[follower] = kept
        return [(s, q, p, t) for _, s, q, p, t in kept[1]]

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

    def set_follower_position(self, follower: str, symbol: str, amount: Decimal) -> None:
        with self.transaction(changes=follower) as db:
            db.execute(
                "INSERT INTO follower_positions VALUES (?, ?, ?) ON CONFLICT(follower, symbol)"
                " DO UPDATE SET amount=excluded.amount",
                (follower, symbol, str(amount)),
            )

    def skips(self, follower: str) -> list[tuple[int, str, str]]:
        return list(self._db.execute("SELECT seq, event, symbol FROM skips WHERE follower=? ORDER BY id", (follower,)))

    # -- equity -----------------------------------------------------------------------------------

    def record_equity(self, account: str, equity: Decimal, now_ms: int) -> None:
        with self.transaction() as db:
            db.execute(
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

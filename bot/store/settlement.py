"""The settlement tables (SPEC 7): activation episodes, boundary snapshots, settlement rows and transfers,
typed from the store to the reports (Decimal, never strings in between)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from bot.core.model import ZERO, TransferStatus

if TYPE_CHECKING:
    from bot.store.db import Store


@dataclass(frozen=True, slots=True)
class Episode:
    """One activation of a follower, from its activation to the moment its close-out left it flat."""

    follower: str
    episode: int
    activated_ms: int
    start_copy_equity: Decimal
    ended_ms: int | None
    end_copy_equity: Decimal | None  # None when it ended without the bot (removed while the daemon was down)


@dataclass(frozen=True, slots=True)
class Boundary:
    """An account's equity at a cycle boundary (or the first snapshot after it: `late`)."""

    equity: Decimal
    copy_equity: Decimal  # equity − the reserve in force at the boundary
    taken_ms: int
    late: bool


@dataclass(frozen=True, slots=True)
class SettlementRecord:
    cycle: str
    follower: str
    episode: int
    e_start: Decimal
    e_end: Decimal
    flows: Decimal
    fees: Decimal
    funding: Decimal
    pnl: Decimal
    compensation: Decimal
    profit_share: Decimal
    fee_rebate: Decimal
    late: bool


@dataclass(frozen=True, slots=True)
class Transfer:
    client_tran_id: str
    cycle: str
    follower: str
    episode: int
    kind: str  # compensation (lead → follower) or profit_share (follower → lead)
    from_account: str
    to_account: str
    amount: Decimal
    status: TransferStatus
    tran_id: str | None = None
    error: str | None = None
    attempts: int = 0
    next_attempt_ms: int = 0

    @property
    def to_follower(self) -> Decimal:
        """The money this transfer moves into the follower's account (negative: out of it)."""
        return self.amount if self.kind == "compensation" else -self.amount


_SETTLEMENT_COLUMNS = (
    "cycle, follower, episode, e_start, e_end, flows, fees, funding, pnl, compensation, profit_share, fee_rebate, late"
)
_TRANSFER_COLUMNS = (
    "client_tran_id, cycle, follower, episode, kind, from_account, to_account, amount, status, tran_id, error,"
    " attempts, next_attempt_ms"
)


def _settlement(row: tuple[object, ...]) -> SettlementRecord:
    e_start, e_end, flows, fees, funding, pnl, compensation, share, rebate = (Decimal(str(m)) for m in row[3:12])
    return SettlementRecord(
        str(row[0]),
        str(row[1]),
        int(str(row[2])),
        e_start,
        e_end,
        flows,
        fees,
        funding,
        pnl,
        compensation,
        share,
        rebate,
        bool(row[12]),
    )


def _transfer(row: tuple[object, ...]) -> Transfer:
    tid, cycle, follower, episode, kind, src, dst, amount, status, tran_id, error, attempts, next_ms = row
    return Transfer(
        str(tid),
        str(cycle),
        str(follower),
        int(str(episode)),
        str(kind),
        str(src),
        str(dst),
        Decimal(str(amount)),
        TransferStatus(str(status)),
        None if tran_id is None else str(tran_id),
        None if error is None else str(error),
        int(str(attempts)),
        int(str(next_ms)),
    )


class SettlementBook:
    def __init__(self, store: Store) -> None:
        self._store = store

    @property
    def _db(self):  # type: ignore[no-untyped-def]
        return self._store._db

    # -- episodes and reserves ---------------------------------------------------------------------

    def episodes_overlapping(self, start_ms: int, end_ms: int) -> list[Episode]:
        """Activation episodes with a moment inside [start, end), in activation order."""
        rows = self._db.execute(
            "SELECT follower, episode, activated_ms, start_copy_equity, ended_ms, end_copy_equity"
            " FROM episodes WHERE activated_ms < ? AND (ended_ms IS NULL OR ended_ms >= ?)"
            " ORDER BY activated_ms, follower",
            (end_ms, start_ms),
        )
        return [
            Episode(f, ep, act, Decimal(start), ended, None if end is None else Decimal(end))
            for f, ep, act, start, ended, end in rows
        ]

    def first_activation_ms(self) -> int | None:
        row = self._db.execute("SELECT MIN(activated_ms) FROM episodes").fetchone()
        return None if row[0] is None else int(row[0])

    def reserve_at(self, follower: str, moment_ms: int) -> Decimal:
        """The reserve in force at a moment: the one left by the latest activation or investment change
        before it (an investment change made after a boundary never moves that boundary's copy equity)."""
        row = self._db.execute(
            "SELECT reserve_after FROM flows WHERE follower=? AND recorded_ms <= ? AND reserve_after IS NOT NULL"
            " ORDER BY id DESC LIMIT 1",
            (follower, moment_ms),
        ).fetchone()
        if row is not None:
            return Decimal(row[0])
        current = self._store.follower(follower)
        return current.reserve if current is not None else ZERO

    def flows(self, follower: str, episode: int, start_ms: int, end_ms: int) -> Decimal:
        """Investment changes of one episode recorded in [start, end) (+ top-ups)."""
        rows = self._db.execute(
            "SELECT amount FROM flows WHERE follower=? AND episode=? AND reason='investment' AND"
            " recorded_ms >= ? AND recorded_ms < ?",
            (follower, episode, start_ms, end_ms),
        )
        return sum((Decimal(r[0]) for r in rows), ZERO)

    # -- boundaries --------------------------------------------------------------------------------

    def boundary(self, cycle: str, account: str) -> Boundary | None:
        row = self._db.execute(
            "SELECT equity, copy_equity, taken_ms, late FROM boundary_equity WHERE cycle=? AND account=?",
            (cycle, account),
        ).fetchone()
        return None if row is None else Boundary(Decimal(row[0]), Decimal(row[1]), int(row[2]), bool(row[3]))

    def record_boundary(self, cycle: str, account: str, snapshot: Boundary) -> None:
        with self._store.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO boundary_equity (cycle, account, equity, copy_equity, taken_ms, late)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    cycle,
                    account,
                    str(snapshot.equity),
                    str(snapshot.copy_equity),
                    snapshot.taken_ms,
                    int(snapshot.late),
                ),
            )

    def owed(self, follower: str, episode: int, before_ms: int, moment_ms: int) -> Decimal:
        """Money the settlements of cycles ended by `before_ms` moved, or will move, into this episode's account
        (− out of it) that had not reached it at `moment_ms`: every such transfer not done by then. A
        settlement's E_start counts its predecessor's transfers whatever their status, so its E_end counts
        the ones still on their way: a transfer's money is never PnL, whenever it completes."""
        rows = self._db.execute(
            "SELECT t.kind, t.amount FROM transfers t JOIN cycles c ON c.id = t.cycle WHERE t.follower=? AND"
            " t.episode=? AND c.end_ms <= ? AND NOT (t.status='done' AND t.updated_ms <= ?)",
            (follower, episode, before_ms, moment_ms),
        )
        return sum((Decimal(a) if k == "compensation" else -Decimal(a) for k, a in rows), ZERO)

    # -- cycles and rows ---------------------------------------------------------------------------

    def settled_cycles(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT id FROM cycles WHERE settled_ms IS NOT NULL")}

    def incomplete_cycles(self) -> list[tuple[str, int, int]]:
        """Settled cycles whose `settlement_completed` has not been logged yet: (id, start, end)."""
        rows = self._db.execute(
            "SELECT id, start_ms, end_ms FROM cycles WHERE settled_ms IS NOT NULL AND completed_ms IS NULL"
            " ORDER BY end_ms"
        )
        return [(str(i), int(s), int(e)) for i, s, e in rows]

    def cycle_bounds(self, cycle: str) -> tuple[int, int] | None:
        row = self._db.execute("SELECT start_ms, end_ms FROM cycles WHERE id=?", (cycle,)).fetchone()
        return None if row is None else (int(row[0]), int(row[1]))

    def mark_settled(self, cycle: str, start_ms: int, end_ms: int, now_ms: int) -> None:
        with self._store.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO cycles (id, start_ms, end_ms) VALUES (?, ?, ?)", (cycle, start_ms, end_ms)
            )
            db.execute("UPDATE cycles SET settled_ms=? WHERE id=? AND settled_ms IS NULL", (now_ms, cycle))

    def mark_completed(self, cycle: str, now_ms: int) -> None:
        with self._store.transaction() as db:
            db.execute("UPDATE cycles SET completed_ms=? WHERE id=? AND completed_ms IS NULL", (now_ms, cycle))

    def row(self, cycle: str, follower: str, episode: int) -> SettlementRecord | None:
        row = self._db.execute(
            f"SELECT {_SETTLEMENT_COLUMNS} FROM settlements WHERE cycle=? AND follower=? AND episode=?",
            (cycle, follower, episode),
        ).fetchone()
        return None if row is None else _settlement(row)

    def rows(self, cycle: str) -> list[SettlementRecord]:
        rows = self._db.execute(
            f"SELECT {_SETTLEMENT_COLUMNS} FROM settlements WHERE cycle=? ORDER BY rowid",
            (cycle,),
        )
        return [_settlement(r) for r in rows]

    def latest_before(self, follower: str, episode: int, start_ms: int) -> SettlementRecord | None:
        row = self._db.execute(
            f"SELECT {', '.join('s.' + c.strip() for c in _SETTLEMENT_COLUMNS.split(','))} FROM settlements s"
            " JOIN cycles c ON c.id = s.cycle WHERE s.follower=? AND s.episode=? AND c.end_ms <= ?"
            " ORDER BY c.end_ms DESC LIMIT 1",
            (follower, episode, start_ms),
        ).fetchone()
        return None if row is None else _settlement(row)

    def record(
        self, start_ms: int, end_ms: int, record: SettlementRecord, transfers: list[Transfer], now_ms: int
    ) -> None:
        """One episode's settlement and its transfers, in one durable transaction, before any transfer is
        attempted. Recording twice changes nothing."""
        with self._store.transaction(durable=True) as db:
            db.execute(
                "INSERT OR IGNORE INTO cycles (id, start_ms, end_ms) VALUES (?, ?, ?)", (record.cycle, start_ms, end_ms)
            )
            exists = db.execute(
                "SELECT 1 FROM settlements WHERE cycle=? AND follower=? AND episode=?",
                (record.cycle, record.follower, record.episode),
            ).fetchone()
            if exists:
                return
            db.execute(
                f"INSERT INTO settlements ({_SETTLEMENT_COLUMNS}, recorded_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    record.cycle,
                    record.follower,
                    record.episode,
                    *(
                        f"{v:f}"
                        for v in (
                            record.e_start,
                            record.e_end,
                            record.flows,
                            record.fees,
                            record.funding,
                            record.pnl,
                            record.compensation,
                            record.profit_share,
                            record.fee_rebate,
                        )
                    ),
                    int(record.late),
                    now_ms,
                ),
            )
            for t in transfers:
                db.execute(
                    f"INSERT INTO transfers ({_TRANSFER_COLUMNS}, updated_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        t.client_tran_id,
                        t.cycle,
                        t.follower,
                        t.episode,
                        t.kind,
                        t.from_account,
                        t.to_account,
                        f"{t.amount:f}",
                        t.status,
                        None,
                        None,
                        0,
                        0,
                        now_ms,
                    ),
                )

    # -- transfers ---------------------------------------------------------------------------------

    def transfers(self, cycle: str | None = None, status: TransferStatus | None = None) -> list[Transfer]:
        clauses, args = [], []
        if cycle is not None:
            clauses.append("cycle=?")
            args.append(cycle)
        if status is not None:
            clauses.append("status=?")
            args.append(status)
        where = " AND ".join(clauses) or "1=1"
        rows = self._db.execute(f"SELECT {_TRANSFER_COLUMNS} FROM transfers WHERE {where} ORDER BY rowid", args)
        return [_transfer(r) for r in rows]

    def begin_attempt(self, client_tran_id: str, now_ms: int) -> Transfer:
        """Counts an attempt durably before it is sent: after any crash, the next attempt looks up first."""
        with self._store.transaction(durable=True) as db:
            db.execute(
                "UPDATE transfers SET attempts=attempts+1, updated_ms=? WHERE client_tran_id=?",
                (now_ms, client_tran_id),
            )
            row = db.execute(
                f"SELECT {_TRANSFER_COLUMNS} FROM transfers WHERE client_tran_id=?",
                (client_tran_id,),
            ).fetchone()
        return _transfer(row)

    def finish_attempt(
        self,
        client_tran_id: str,
        status: TransferStatus,
        tran_id: str | None,
        error: str | None,
        next_ms: int,
        now_ms: int,
    ) -> None:
        with self._store.transaction() as db:
            db.execute(
                "UPDATE transfers SET status=?, tran_id=COALESCE(?, tran_id), error=?, next_attempt_ms=?,"
                " updated_ms=? WHERE client_tran_id=?",
                (status, tran_id, error, next_ms, now_ms, client_tran_id),
            )

    def retry_failed(self, now_ms: int) -> int:
        """`bot settle --retry`: failed transfers are pending again, to be tried at once."""
        with self._store.transaction() as db:
            cur = db.execute(
                "UPDATE transfers SET status='pending', next_attempt_ms=0, updated_ms=? WHERE status='failed'",
                (now_ms,),
            )
            return int(cur.rowcount)

"""The state file's connection: its transactions (savepoints, durable commits, the group commit at the end of
an event loop turn, commits made durable later by an fsync off the event loop), its schema brought up to date,
its meta values, and the rows kept for the next read."""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from decimal import Decimal
from pathlib import Path

from bot.store.rows import FollowerRow, KeptFills
from bot.store.schema import MIGRATIONS, SCHEMA, SCHEMA_VERSION


class StateWriteFailed(RuntimeError):
    """A commit of the state, or its sync to disk, failed (the disk is full or failing): nothing more is written
    by this process."""


SYNC_THREADS = 4  # syncs side by side: a fan-out's chunks (3 at 100 followers, 6 at 500) and a worker's


def _fdatasync(path: str) -> None:
    """The file's data on disk (any descriptor of a file flushes all of it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


class StateConnection:
    """One connection to the state file; the books below share it (and the rows it keeps)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._sync_full = True  # the connection's synchronous setting: FULL (fsync at commit) or NORMAL
        self._batch_open = False  # a transaction holding changes not committed yet (see `transaction`)
        self._commit_scheduled = False
        self._failed: Exception | None = None
        # told when a commit at the end of a loop turn, or a sync (`on_disk`), fails: the daemon stops
        self.on_commit_failure: Callable[[Exception], None] | None = None
        self._commits = 0  # commits so far; those up to `_on_disk` are known to be on disk
        self._on_disk = 0
        self.syncs = 0  # fsyncs made (a FULL commit, or one in `on_disk`)
        self._syncing: tuple[int, asyncio.Future[None]] | None = None  # the last sync begun: the commits it covers
        self._sync_threads: ThreadPoolExecutor | None = None
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
                for step in range(int(version[0]), SCHEMA_VERSION):
                    for statement in MIGRATIONS[step].split(";"):
                        if statement.strip():
                            db.execute(statement)
                db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
        self.epoch: str = self._db.execute("SELECT value FROM meta WHERE key='epoch'").fetchone()[0]
        # What every lead change reads for every follower, kept from the last read and written through by this
        # class's own methods (the only writer of these tables): a fan-out reads no row twice.
        self._rows: dict[str, FollowerRow] = {}
        self._positions: dict[str, dict[str, Decimal]] = {}
        self._fills: dict[str, KeptFills] = {}
        self._leverage: dict[str, dict[str, Decimal]] = {}  # per follower: symbol -> leverage set

    def close(self) -> None:
        if self._failed is None:
            self._commit_batch()
        self._db.close()
        if self._sync_threads is not None:
            self._sync_threads.shutdown(wait=True)

    @contextmanager
    def transaction(
        self, durable: bool = False, changes: str | None = None, synced: bool = True
    ) -> Iterator[sqlite3.Connection]:
        """One state change, all or nothing (a savepoint). `durable` changes are committed and fsynced
        (synchronous=FULL) before this returns: those that precede an action on an exchange (intents,
        close-outs, settlements). The others (outcomes, progress, snapshots) are committed together at the end
        of the event loop's turn (group commit: a fan-out's hundred outcomes are one commit, not a hundred),
        with synchronous=NORMAL, and before any durable one. This connection reads them at once; a crash of the
        process before that commit loses them, as a power cut could lose a NORMAL commit, and what they said is
        re-derived (an intent still pending is looked up by its client order id). `changes`: the follower whose
        row or positions it writes (their kept copies are dropped, whether it commits or not). `synced=False`
        (with `durable`): committed at once but not fsynced; the caller awaits `on_disk()` before the action it
        precedes, and the event loop goes on meanwhile."""
        self._begin(durable, synced)
        self._db.execute("SAVEPOINT change")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK TO change")
            self._db.execute("RELEASE change")
            if durable:
                self._db.execute("ROLLBACK")
                self._batch_open = False
            else:
                self._commit_later()  # the batch's other changes stand
            raise
        else:
            self._db.execute("RELEASE change")
            if durable:
                self._commit_batch()
            else:
                self._commit_later()
        finally:
            if changes is not None:
                self._changed(changes)

    def write(self, sql: str, args: Sequence[object] = ()) -> sqlite3.Cursor:
        """A state change of one statement, in the batch committed at the end of the loop turn (as `transaction`
        without `durable`). It needs no savepoint: SQLite undoes a statement that fails, and only it."""
        self._begin(durable=False)
        try:
            return self._db.execute(sql, args)
        finally:
            self._commit_later()  # the batch's other changes stand either way

    def _begin(self, durable: bool, synced: bool = True) -> None:
        """Opens the batch (a durable change first commits the one open: it is not durable)."""
        self._refuse_if_failed()
        if durable and self._batch_open:
            self._commit_batch()
        if not self._batch_open:
            full = durable and synced
            if full != self._sync_full:
                self._db.execute(f"PRAGMA synchronous={'FULL' if full else 'NORMAL'}")
                self._sync_full = full
            self._db.execute("BEGIN IMMEDIATE")
            self._batch_open = True

    def _refuse_if_failed(self) -> None:
        if self._failed is not None:
            raise StateWriteFailed(f"{self.path}: an earlier commit or sync failed ({self._failed})") from self._failed

    async def on_disk(self) -> None:
        """Returns once every commit made before the call is on disk: an fdatasync of the write-ahead log (what
        synchronous=FULL does at each commit) in a thread, the event loop going on meanwhile. A call shares the
        last sync begun if that one began after its commits, else begins its own at once (not after the ones in
        flight: a fan-out's chunks are synced side by side). A sync that fails stops every later write (as a
        refused commit does) and raises StateWriteFailed."""
        wanted = self._commits
        if self._on_disk >= wanted:
            return
        self._refuse_if_failed()
        if self._syncing is None or self._syncing[0] < wanted:
            self._syncing = (wanted, asyncio.ensure_future(self._sync(wanted)))
        await asyncio.shield(self._syncing[1])

    async def _sync(self, covers: int) -> None:
        if self._sync_threads is None:
            self._sync_threads = ThreadPoolExecutor(max_workers=SYNC_THREADS, thread_name_prefix="state-sync")
        try:
            await asyncio.get_running_loop().run_in_executor(self._sync_threads, _fdatasync, f"{self.path}-wal")
        except OSError as exc:
            if self._failed is None:
                self._fail(exc)
            raise StateWriteFailed(f"{self.path}: syncing the state to disk failed ({exc})") from exc
        self.syncs += 1
        self._on_disk = max(self._on_disk, covers)

    def _commit_later(self) -> None:
        """The open batch commits at the end of this event loop turn (at once outside an event loop)."""
        if self._commit_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._commit_batch()
            return
        self._commit_scheduled = True
        loop.call_soon(self._commit_scheduled_batch)

    def _commit_scheduled_batch(self) -> None:
        self._commit_scheduled = False
        try:
            self._commit_batch()
        except sqlite3.Error as exc:
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        """The disk refused a commit or a sync (full, I/O error): every later write raises StateWriteFailed,
        loudly, in the task that attempts it; the kept copies may hold what was lost, so they go."""
        self._failed = exc
        self._rows.clear()
        self._positions.clear()
        self._fills.clear()
        self._leverage.clear()
        with suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")
        self._batch_open = False
        if self.on_commit_failure is not None:
            self.on_commit_failure(exc)
        else:
            asyncio.get_running_loop().call_exception_handler(
                {"message": f"state commit or sync failed: {exc}", "exception": exc}
            )

    def _commit_batch(self) -> None:
        if self._batch_open:
            self._db.execute("COMMIT")
            self._batch_open = False
            self._commits += 1
            if self._sync_full:  # the WAL was fsynced: this commit and every one before it are on disk
                self.syncs += 1
                self._on_disk = self._commits

    # -- meta -------------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.write("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value))

    def _changed(self, name: str) -> None:
        """A write to the follower's row or positions: the next read goes to the database."""
        self._rows.pop(name, None)
        self._positions.pop(name, None)

"""The state directory: the database file in it and the lock that keeps it to one daemon (or `bot settle`)."""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import TextIO

from bot.store.db import Store

DB_FILE = "copybot.sqlite3"
LOCK_FILE = "copybot.lock"


def db_path(state_dir: Path) -> Path:
    return state_dir / DB_FILE


def open_state(state_dir: Path) -> Store:
    return Store(db_path(state_dir))


def lock_state(state_dir: Path) -> TextIO | None:
    """An exclusive lock on the state directory (None: another process holds it): two daemons on one state
    could send the same intent twice. Held as long as the returned handle is open."""
    state_dir.mkdir(parents=True, exist_ok=True)
    handle = (state_dir / LOCK_FILE).open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle

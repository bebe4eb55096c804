"""The daemon's supervision: every task spawned through it, a task that dies stops the daemon loudly (crash-only:
the state is always safe to start from), a stop with a grace period for orders in flight, and exit codes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

EXIT_OK = 0
EXIT_UNREACHABLE = 1
EXIT_CONFIG = 2
EXIT_LEAD_GONE = 3
EXIT_TASK_FAILED = 4  # a task died of an unexpected error: crash-only, a supervisor restarts the daemon


class Supervisor:
    def __init__(self, log: Any, shutdown_grace_s: float) -> None:
        self.log = log
        self.shutdown_grace_s = shutdown_grace_s
        self.stopping = asyncio.Event()
        self.exit_code = EXIT_OK
        self._tasks: set[asyncio.Task[None]] = set()
        self._wakes: dict[str, asyncio.Event] = {}  # each follower's worker's
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._fan_out_task: asyncio.Task[None] | None = None
        self._lead_changed = asyncio.Event()
        self._reload = asyncio.Event()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Every task of the daemon: one that dies of an error logs it with its traceback and stops the daemon
        with EXIT_TASK_FAILED (crash-only: the state is always safe to start from), never silently."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        self.log.error("task_failed", task=task.get_name(), error=f"{type(exc).__name__}: {exc}"[:500], exc_info=exc)
        self.exit_code = EXIT_TASK_FAILED
        self.stop()

    def _state_commit_failed(self, exc: BaseException) -> None:
        """The state could not be committed (the disk full or failing): nothing more can be done safely."""
        self.log.error("state_commit_failed", error=f"{type(exc).__name__}: {exc}"[:500])
        self.exit_code = EXIT_TASK_FAILED
        self.stop()

    def stop(self) -> None:
        if not self.stopping.is_set():
            self.log.info("shutdown_requested")
        self.stopping.set()

    def request_reload(self) -> None:
        self._reload.set()

    async def _shutdown(self) -> None:
        """Stops taking lead changes; lets in-flight orders finish within the grace period."""
        for wake in self._wakes.values():
            wake.set()
        self._lead_changed.set()  # the fan-out sees the stop at once
        tasks = list(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=self.shutdown_grace_s)
        for task in tasks:
            if not task.done():
                self.log.warning("shutdown_task_cancelled", task=task.get_name())
                task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _on_change(self) -> None:
        for wake in self._wakes.values():
            wake.set()

    async def _stop_workers(self) -> None:
        """Every follower's worker and the fan-out stop where they are (as a crash would: a restart resumes)."""
        tasks = [*self._workers.values(), *([self._fan_out_task] if self._fan_out_task else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

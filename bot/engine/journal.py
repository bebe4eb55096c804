"""Group commit of plans: the intents of every follower that plans in the same moment share one fsync.

Each caller still waits until its own plan is durable before it sends anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from bot.core.model import PlanRecord
from bot.store.db import Store
from bot.store.rows import IntentRow


class PlanJournal:
    def __init__(self, store: Store, log: Any = None) -> None:
        self.store = store
        self.log = log
        self.commits = 0  # durable commits
        self._pending: list[tuple[PlanRecord, asyncio.Future[list[IntentRow]]]] = []

    async def record(self, plan: PlanRecord) -> list[IntentRow]:
        """Durable with the plans of every other follower recording in this event-loop turn; its intent rows."""
        future: asyncio.Future[list[IntentRow]] = asyncio.get_running_loop().create_future()
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append((plan, future))
        return await future

    def record_all(self, plans: Sequence[PlanRecord]) -> tuple[list[list[IntentRow]], asyncio.Future[None]]:
        """Several plans committed now, in one commit (a fan-out's chunk): each plan's intent rows, and a future
        done once they are on disk (an fsync in a thread, shared with the chunks committed meanwhile): their
        orders wait for it, the next chunk is planned meanwhile."""
        rows = self.store.record_plans(list(plans), synced=False)
        self._committed(len(plans))
        return rows, asyncio.ensure_future(self.store.on_disk())

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        try:
            rows = self.store.record_plans([plan for plan, _ in batch])
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self._committed(len(batch))
        for (_, future), plan_rows in zip(batch, rows, strict=True):
            if not future.done():
                future.set_result(plan_rows)

    def _committed(self, plans: int) -> None:
        self.commits += 1
        if self.log is not None:
            self.log.debug("plans_journaled", plans=plans, commits=self.commits)

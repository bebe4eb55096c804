"""Group commit of plans: the intents of every follower that plans in the same moment share one fsync.

Each caller still waits until its own plan is durable before it sends anything.
"""

from __future__ import annotations

import asyncio

from bot.core.model import Intent, Skip
from bot.store.db import Store

Plan = tuple[str, str, int, list[tuple[Intent, str]], tuple[Skip, ...], int]


class PlanJournal:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: list[tuple[Plan, asyncio.Future[None]]] = []

    async def record(self, plan: Plan) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append((plan, future))
        await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        try:
            self.store.record_plans([plan for plan, _ in batch])
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for _, future in batch:
            if not future.done():
                future.set_result(None)

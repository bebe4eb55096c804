"""The lead's user data stream through ccxt.pro, behind the bot's own types: the engine sees `next_change()`
and the bot's errors, never ccxt."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import ccxt.pro as ccxt_pro

from bot.venue.errors import Temporary

T = TypeVar("T")


async def until_stopped(watch_once: Callable[[], Awaitable[T]], stopping: asyncio.Event) -> T | None:
    """One awaited read (a ccxt.pro watch, a websocket's next message), or None as soon as `stopping` is set
    (the read is then cancelled)."""
    watch = asyncio.ensure_future(watch_once())
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({watch, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        if not watch.done():
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watch
    if watch.done() and not watch.cancelled():
        return watch.result()
    return None


class Outage:
    """A stream's connection as its log tells it: `<name>_connected` the first time it is up,
    `<name>_disconnected` once per outage (however many reconnects fail), `<name>_resumed` with the gap."""

    def __init__(self, name: str, clock_ms: Callable[[], int], log: Any) -> None:
        self.name = name
        self.clock_ms = clock_ms
        self.log = log
        self.down_since: int | None = None

    def up(self) -> None:
        if self.down_since is None:
            self.log.info(f"{self.name}_connected")
        else:
            self.log.info(f"{self.name}_resumed", gap_ms=self.clock_ms() - self.down_since)
            self.down_since = None

    def down(self, error: str) -> None:
        if self.down_since is None:
            self.down_since = self.clock_ms()
            self.log.warning(f"{self.name}_disconnected", error=error[:300])


class StreamError(Temporary):
    """The stream failed or was cut: the caller reconnects (with backoff) and reads by REST meanwhile."""


class PositionStream:
    """One connection of an account's user data stream; `next_change()` returns at its next position event
    (`watch`: ccxt.pro's `watch_positions` on futures, `watch_balance` on spot, whose holdings are balances)."""

    def __init__(self, make_client: Callable[[], Any], markets_from: Any, watch: str = "watch_positions") -> None:
        self._client = make_client()
        self._client.set_markets_from_exchange(markets_from)
        self._watch = getattr(self._client, watch)
        self._subscribed = watch != "watch_balance"  # spot: the first call subscribes, then watches

    async def next_change(self, stopping: asyncio.Event) -> None:
        """Waits for the next position event (the first call subscribes: on futures a position snapshot returns
        at once; on spot, whose balance stream sends no snapshot, the first call returns once the websocket
        API has acknowledged the subscription), or until `stopping` is set."""
        watch = self._watch
        if not self._subscribed:
            self._subscribed = True
            watch = lambda: self._client.authenticate({"type": "spot"})  # noqa: E731
        try:
            await until_stopped(watch, stopping)
        except (ccxt_pro.BaseError, OSError) as exc:
            raise StreamError(f"{type(exc).__name__}: {exc}"[:300]) from None

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._client.close()

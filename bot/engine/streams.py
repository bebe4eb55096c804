"""The streams the daemon follows besides REST: the public mark-price stream (marks and funding, for the stop
loss, the estimate and the lead's leverage check) and, with `lead_source = "stream"`, the lead's own user data
stream. Each is one task; a stream that is down falls back to REST at a bounded rate."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from bot.engine.clock import Clock
from bot.engine.lead import LeadPoller, LeadStream
from bot.settings import AccountSettings
from bot.venue.ccxt_venue import build_client
from bot.venue.http import SharedHttp
from bot.venue.marks import MarkStream, mark_stream_url
from bot.venue.stream import PositionStream


async def mark_stream(
    lead: AccountSettings,
    http: SharedHttp,
    timeout_ms: int,
    on_marks: Callable[[dict[str, Decimal], dict[str, tuple[Decimal, int]]], None],
    clock: Clock,
    stopping: asyncio.Event,
    log: Any,
) -> None:
    """One public stream for every market's mark price and funding, at the URL ccxt.pro would subscribe to for
    the lead's environment: each update goes to `on_marks`."""
    client = build_client(lead, timeout_ms, stream=True)
    try:
        url = mark_stream_url(client)
    finally:
        await client.close()
    stream = MarkStream(url, lambda: http.session, timeout_ms / 1000, clock.now_ms, log)
    await stream.run(on_marks, stopping)


def lead_stream(
    lead: AccountSettings,
    timeout_ms: int,
    markets_from: Any,
    watch: str,
    poller: LeadPoller,
    reconcile_interval_s: float,
    clock: Clock,
    stopping: asyncio.Event,
    log: Any,
) -> Coroutine[Any, Any, None]:
    """The lead's user data stream, waking `poller` at once (REST stays the truth: see `LeadStream`)."""
    stream = LeadStream(
        lambda: PositionStream(lambda: build_client(lead, timeout_ms, stream=True), markets_from, watch),
        poller,
        clock,
        log,
        reconcile_interval_s,
    )
    return stream.run(stopping)

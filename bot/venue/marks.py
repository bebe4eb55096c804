"""The exchange's mark-price stream (one public stream for every market, through ccxt.pro), behind the bot's
own types: `run()` hands every update to a callback as {market id: mark price} and {market id: (funding rate,
next funding time in ms)}."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import ccxt.pro as ccxt_pro

from bot.venue.stream import until_stopped

Marks = dict[str, Decimal]
Funding = dict[str, tuple[Decimal, int]]


class MarkStream:
    def __init__(
        self, make_client: Callable[[], Any], markets_from: Any, clock_ms: Callable[[], int], log: Any
    ) -> None:
        self.make_client = make_client
        self.markets_from = markets_from
        self.clock_ms = clock_ms
        self.log = log
        self.connected = False

    async def run(self, on_marks: Callable[[Marks, Funding], None], stopping: asyncio.Event) -> None:
        """Follows `!markPrice@arr@1s` until `stopping`; reconnects with backoff (logged once per outage)."""
        backoff = 0.5
        down_since: int | None = None
        while not stopping.is_set():
            client = self.make_client()
            client.set_markets_from_exchange(self.markets_from)
            try:
                while not stopping.is_set():
                    tickers: dict[str, Any] | None = await until_stopped(client.watch_mark_prices, stopping)
                    if tickers is None:
                        break
                    if not self.connected:
                        self.connected = True
                        if down_since is None:
                            self.log.info("mark_stream_connected")
                        else:
                            self.log.info("mark_stream_resumed", gap_ms=self.clock_ms() - down_since)
                            down_since = None
                        backoff = 0.5
                    rows = [t["info"] for t in tickers.values() if isinstance(t.get("info"), dict)]
                    marks = {str(r["s"]): Decimal(str(r["p"])) for r in rows if r.get("p")}
                    funding = {
                        str(r["s"]): (Decimal(str(r["r"])), int(r["T"]))
                        for r in rows
                        if r.get("r") not in (None, "") and str(r.get("T", "")).isdigit()
                    }
                    on_marks(marks, funding)
            except (ccxt_pro.BaseError, OSError) as exc:
                self.connected = False
                if down_since is None:
                    down_since = self.clock_ms()
                    self.log.warning("mark_stream_disconnected", error=f"{type(exc).__name__}: {exc}"[:300])
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                with contextlib.suppress(Exception):
                    await client.close()

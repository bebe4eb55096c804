"""The exchange's mark-price stream (`!markPrice@arr@1s`: every market's mark and funding, pushed each second),
behind the bot's own types: `run()` hands every update to a callback as {market id: mark price} and {market id:
(funding rate, next funding time in ms)}.

The stream is public (no key, no signature) and read as a raw stream (`<base>/<stream name>`) on the
process's shared HTTP session (its TLS context), at the URL ccxt.pro would use for it (`mark_stream_url`:
Binance's `/market` route, or the testnet's, demo's or paper exchange's). Its messages are decoded here rather
than through ccxt.pro's `watch_mark_prices`, which parses every market's ticker into a unified structure the
bot never reads: 4.5-5 ms of the event loop per push with 300 markets (Binance lists ~550), where the four
fields of each row the bot uses take ~0.5 ms (issue 12's profile)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
import orjson

from bot.venue.stream import Outage, until_stopped

Marks = dict[str, Decimal]
Funding = dict[str, tuple[Decimal, int]]

STREAM_NAME = "!markPrice@arr@1s"
SILENT_S = 10.0  # the stream pushes every second: silent this long, the connection is taken for dead


def mark_stream_url(client: Any) -> str:
    """Where a ccxt.pro USDⓈ-M client subscribes to mark prices, as a raw stream's URL."""
    base: str = client.get_ws_url("linear", client.get_future_ws_category("markPrice"))
    return f"{base}/{STREAM_NAME}"


def decode(text: str | bytes) -> tuple[Marks, Funding]:
    """One push: a list of `markPriceUpdate` rows (a single row is taken as a list of one). A row without a
    usable symbol and mark is skipped, a funding without a rate or a time is left out; the rest of the push
    stands."""
    payload = orjson.loads(text)
    rows = payload if isinstance(payload, list) else [payload]
    marks: Marks = {}
    funding: Funding = {}
    for row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("s"), str):
            continue
        symbol = row["s"]
        with contextlib.suppress(InvalidOperation, TypeError, ValueError):
            mark = Decimal(str(row["p"])) if row.get("p") not in (None, "") else None
            if mark is not None and mark.is_finite() and mark > 0:
                marks[symbol] = mark
        rate, at = row.get("r"), row.get("T")
        if rate in (None, "") or not str(at).isdigit():
            continue
        with contextlib.suppress(InvalidOperation, TypeError, ValueError):
            funding[symbol] = (Decimal(str(rate)), int(str(at)))
    return marks, funding


class MarkStream:
    def __init__(
        self,
        url: str,
        session: Callable[[], aiohttp.ClientSession],
        timeout_s: float,
        clock_ms: Callable[[], int],
        log: Any,
        silent_s: float = SILENT_S,
    ) -> None:
        self.url = url
        self.session = session
        self.timeout_s = timeout_s
        self.clock_ms = clock_ms
        self.log = log
        self.silent_s = silent_s
        self.connected = False

    async def run(self, on_marks: Callable[[Marks, Funding], None], stopping: asyncio.Event) -> None:
        """Follows the stream until `stopping`; reconnects with backoff (logged once per outage)."""
        backoff = 0.5
        outage = Outage("mark_stream", self.clock_ms, self.log)
        while not stopping.is_set():
            try:
                async with self.session().ws_connect(
                    self.url,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=self.silent_s, ws_close=self.timeout_s),
                    autoping=True,  # Binance pings every few minutes and drops a client that does not answer
                    heartbeat=None,
                ) as ws:
                    while not stopping.is_set():
                        message = await until_stopped(ws.receive, stopping)
                        if message is None:
                            return
                        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                            raise ConnectionResetError(f"closed by the exchange ({ws.close_code})")
                        if message.type is aiohttp.WSMsgType.ERROR:
                            raise ConnectionResetError(str(ws.exception()))
                        if message.type is not aiohttp.WSMsgType.TEXT:
                            continue
                        try:
                            marks, funding = decode(message.data)
                        except orjson.JSONDecodeError:
                            self.log.warning("mark_stream_malformed", text=str(message.data)[:200])
                            continue
                        if not self.connected:
                            self.connected = True
                            outage.up()
                            backoff = 0.5
                        on_marks(marks, funding)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                self.connected = False
                outage.down(f"{type(exc).__name__}: {exc}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=backoff)
                backoff = min(backoff * 2, 10.0)

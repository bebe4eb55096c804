"""Binance's market streams for mark prices, as ccxt.pro consumes them: `<symbol>@markPrice@1s` (and every 3 s
without `@1s`), `!markPrice@arr@1s`; by URL (`/ws/<stream>`, `/stream?streams=a/b`) and by `SUBSCRIBE` on
`/ws`, `/market/ws/...`; with the funding rate and the next funding time. At most 1,024 streams and 10
incoming messages a second per connection, as Binance allows."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from bot.paper import wire
from bot.paper.ledger import Ledger

MAX_STREAMS = 1024
MAX_MESSAGES_PER_S = 10


@dataclass(eq=False)
class _Connection:
    ws: web.WebSocketResponse
    combined: bool  # /stream: each payload wrapped as {"stream", "data"}
    streams: set[str] = field(default_factory=set)
    sent_at: dict[str, int] = field(default_factory=dict)  # stream -> when it was last pushed (ms)
    received: list[float] = field(default_factory=list)  # times of the messages of the last second


def _period_ms(stream: str) -> int | None:
    """How often a stream pushes, or None for a stream this exchange does not serve."""
    name = stream.split("@", 1)[1] if "@" in stream else ""
    if stream.startswith("!markPrice@arr"):
        return 1000 if stream.endswith("@1s") else 3000
    if name in ("markPrice@1s", "markPrice"):
        return 1000 if name.endswith("@1s") else 3000
    return None


class MarketStreams:
    def __init__(self, ledger: Ledger, clock_ms: Callable[[], int]) -> None:
        self.ledger = ledger
        self.clock_ms = clock_ms
        self._connections: set[_Connection] = set()
        self._task: asyncio.Task[None] | None = None
        self.down_until_ms = 0  # an outage: connections refused (HTTP 503) until then

    @staticmethod
    def is_market_stream(name: str) -> bool:
        return "@" in name or name.startswith("!")

    def connections(self) -> int:
        return len(self._connections)

    def drop_connections(self, down_s: float = 0) -> int:
        """Closes every market-stream connection; with `down_s`, refuses new ones for that long (an outage)."""
        self.down_until_ms = max(self.down_until_ms, self.clock_ms() + int(down_s * 1000))
        dropped = 0
        for conn in list(self._connections):
            asyncio.get_running_loop().create_task(conn.ws.close())
            dropped += 1
        return dropped

    # -- events ------------------------------------------------------------------------------------

    def _mark_event(self, symbol: str, now: int) -> dict[str, Any]:
        index = wire.premium_index(self.ledger, symbol, now)
        return {
            "e": "markPriceUpdate",
            "E": now,
            "s": symbol,
            "p": index["markPrice"],
            "ap": index["markPrice"],
            "P": index["estimatedSettlePrice"],
            "i": index["indexPrice"],
            "r": index["lastFundingRate"],
            "T": index["nextFundingTime"],
        }

    def _payload(self, stream: str, now: int) -> Any:
        if stream.startswith("!markPrice@arr"):
            return [self._mark_event(s, now) for s in self.ledger.markets]
        symbol = stream.split("@", 1)[0].upper()
        return self._mark_event(symbol, now) if symbol in self.ledger.markets else None

    async def _push(self, conn: _Connection, now: int) -> None:
        for stream in sorted(conn.streams):
            period = _period_ms(stream)
            if period is None or now - conn.sent_at.get(stream, 0) < period:
                continue
            payload = self._payload(stream, now)
            if payload is None:
                continue
            conn.sent_at[stream] = now
            message = {"stream": stream, "data": payload} if conn.combined else payload
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn.ws.send_str(json.dumps(message))

    async def _publish(self) -> None:
        while self._connections:
            now = self.clock_ms()
            for conn in list(self._connections):
                await self._push(conn, now)
            await asyncio.sleep(0.1)

    def _ensure_publisher(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._publish())

    # -- the websocket -----------------------------------------------------------------------------

    async def handle(self, request: web.Request, streams: list[str], combined: bool) -> web.StreamResponse:
        if self.clock_ms() < self.down_until_ms:
            raise web.HTTPServiceUnavailable(text="market streams unavailable")
        ws = web.WebSocketResponse(heartbeat=None, autoping=True)
        await ws.prepare(request)
        conn = _Connection(ws, combined, set(streams[:MAX_STREAMS]))
        self._connections.add(conn)
        self._ensure_publisher()
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
                if msg.type is not WSMsgType.TEXT:
                    continue
                now = time.monotonic()
                conn.received = [t for t in conn.received if now - t < 1.0] + [now]
                if len(conn.received) > MAX_MESSAGES_PER_S:  # Binance disconnects a client sending too fast
                    await ws.close(code=1008, message=b"too many messages")
                    break
                await ws.send_str(json.dumps(self._command(conn, msg.data)))
        finally:
            self._connections.discard(conn)
        return ws

    def _command(self, conn: _Connection, text: str) -> dict[str, Any]:
        """SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, as Binance answers them."""
        try:
            request = json.loads(text)
            method, params, ident = request.get("method"), request.get("params", []), request.get("id")
        except (ValueError, AttributeError):
            return {"error": {"code": 3, "msg": "Invalid JSON"}}
        if method == "SUBSCRIBE":
            if len(conn.streams | set(params)) > MAX_STREAMS:
                return {"error": {"code": 2, "msg": f"at most {MAX_STREAMS} streams per connection"}, "id": ident}
            conn.streams |= set(params)
            return {"result": None, "id": ident}
        if method == "UNSUBSCRIBE":
            conn.streams -= set(params)
            return {"result": None, "id": ident}
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": sorted(conn.streams), "id": ident}
        return {"error": {"code": 1, "msg": f"Unknown method {method!r}"}, "id": ident}

    async def stop(self) -> None:
        for conn in list(self._connections):
            with contextlib.suppress(Exception):
                await conn.ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

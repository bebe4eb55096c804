"""The user data stream: listen keys and the websocket that pushes ACCOUNT_UPDATE / ORDER_TRADE_UPDATE."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from bot.paper import account_wire, errors
from bot.paper.ledger import Ledger
from bot.paper.state import Account, Order, Trade

LISTEN_KEY_VALIDITY_MS = 60 * 60 * 1000


@dataclass(slots=True, eq=False)
class _Subscriber:
    ws: web.WebSocketResponse
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)


@dataclass(slots=True)
class _ListenKey:
    key: str
    account: str
    expires_ms: int


class UserStreams:
    """Listen keys per account and the websocket subscribers that receive each account's events."""

    def __init__(self, clock_ms: Callable[[], int]) -> None:
        self.clock_ms = clock_ms
        self.ledger: Ledger | None = None
        self._keys: dict[str, _ListenKey] = {}
        self._subscribers: dict[str, set[_Subscriber]] = {}

    # -- Listener protocol (called synchronously by the ledger) -----------------------------------

    def order_update(self, account: Account, order: Order, execution: str, trade: Trade | None) -> None:
        if account.name in self._subscribers:
            self._publish(account.name, account_wire.order_trade_update(order, execution, trade, self.clock_ms()))

    def account_update(self, account: Account, reason: str, symbols: Iterable[str]) -> None:
        if account.name in self._subscribers and self.ledger is not None:
            payload = account_wire.account_update(self.ledger, account, reason, list(symbols), self.clock_ms())
            self._publish(account.name, payload)

    def _publish(self, account_name: str, payload: dict[str, object]) -> None:
        text = json.dumps(payload)
        for sub in self._subscribers.get(account_name, ()):
            sub.queue.put_nowait(text)

    # -- listen keys -------------------------------------------------------------------------------

    def create_key(self, account: Account) -> str:
        now = self.clock_ms()
        for entry in self._keys.values():
            if entry.account == account.name and entry.expires_ms > now:
                entry.expires_ms = now + LISTEN_KEY_VALIDITY_MS
                return entry.key
        key = secrets.token_hex(32)
        self._keys[key] = _ListenKey(key, account.name, now + LISTEN_KEY_VALIDITY_MS)
        return key

    def keep_alive(self, account: Account, key: str | None) -> str:
        entry = self._own_key(account, key)
        entry.expires_ms = self.clock_ms() + LISTEN_KEY_VALIDITY_MS
        return entry.key

    def close_key(self, account: Account, key: str | None) -> None:
        entry = self._own_key(account, key)
        self._expire(entry, notify=False)

    def _own_key(self, account: Account, key: str | None) -> _ListenKey:
        now = self.clock_ms()
        candidates = [e for e in self._keys.values() if e.account == account.name and e.expires_ms > now]
        if key:
            candidates = [e for e in candidates if e.key == key]
        if not candidates:
            raise errors.listen_key_missing()
        return candidates[0]

    def expire_keys(self, account_name: str | None = None, force: bool = True) -> int:
        """Expires listen keys (all of an account's, or all, or only the stale ones when not forced)."""
        now = self.clock_ms()
        due = [
            e
            for e in self._keys.values()
            if (account_name is None or e.account == account_name) and (force or e.expires_ms <= now)
        ]
        for entry in due:
            self._expire(entry, notify=True)
        return len(due)

    def _expire(self, entry: _ListenKey, notify: bool) -> None:
        self._keys.pop(entry.key, None)
        for sub in list(self._subscribers.get(entry.account, ())):
            if notify:
                event = {"e": "listenKeyExpired", "E": self.clock_ms(), "listenKey": entry.key}
                sub.queue.put_nowait(json.dumps(event))
            sub.queue.put_nowait(None)

    def drop_connections(self, account_name: str | None = None) -> int:
        dropped = 0
        for name, subs in self._subscribers.items():
            if account_name is None or name == account_name:
                for sub in subs:
                    sub.queue.put_nowait(None)
                    dropped += 1
        return dropped

    def connections(self, account_name: str) -> int:
        return len(self._subscribers.get(account_name, ()))

    # -- websocket ---------------------------------------------------------------------------------

    async def handle_ws(self, request: web.Request) -> web.StreamResponse:
        key = request.query.get("listenKey") or request.match_info.get("name", "")
        entry = self._keys.get(key)
        if entry is None or entry.expires_ms <= self.clock_ms():
            raise web.HTTPBadRequest(text=json.dumps(errors.listen_key_missing().body()))
        ws = web.WebSocketResponse(heartbeat=None, autoping=True)
        await ws.prepare(request)
        sub = _Subscriber(ws)
        self._subscribers.setdefault(entry.account, set()).add(sub)
        writer = asyncio.create_task(self._write(sub))
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
                # Binance ignores what a client sends on a user data stream, except pings/pongs.
        finally:
            self._subscribers.get(entry.account, set()).discard(sub)
            sub.queue.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return ws

    async def _write(self, sub: _Subscriber) -> None:
        await pump(sub.ws, sub.queue)


async def pump(ws: web.WebSocketResponse, queue: asyncio.Queue[str | None]) -> None:
    """Sends what is queued for a subscriber until None (or the socket goes), then closes the socket."""
    while True:
        text = await queue.get()
        if text is None or ws.closed:
            break
        try:
            await ws.send_str(text)
        except (ConnectionError, RuntimeError):
            break
    if not ws.closed:
        await ws.close()

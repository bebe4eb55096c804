"""Keep-alive HTTP/1.1 connections for the copy path's one request (a new order), lighter than a general client.

Why: at a fan-out the daemon is one event loop sending an order per follower, and aiohttp's client (its request
object, connector, timers, payload and response machinery) was about a third of the daemon's CPU per order
(issue 12's profile). This sends ready-made request bytes on a pooled connection and parses the answer with
httptools (llhttp, the parser uvicorn uses): status line, headers, Content-Length or chunked bodies, keep-alive
rules, gzip and deflate. Nothing else: no redirects (an order is never redirected), no proxies (those clients
stay on ccxt's path), no retries (a request that may have reached the exchange is never sent again here: its
client order id is looked up instead).
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import cast
from urllib.parse import urlsplit

import certifi
import httptools

# an idle connection older than this is closed rather than reused (aiohttp's client keeps them 15 s): a server
# closes idle connections after a while, and a request written as it does so has an unknown outcome
IDLE_S = 15.0


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    reason: str
    headers: dict[str, str]  # names as sent; a repeated header's values joined with ", " (as ccxt does)
    text: str


class ConnectionLost(ConnectionError):
    """The connection ended before the whole answer arrived: the request may or may not have been acted on."""


class _Connection(asyncio.Protocol):
    """One connection: one request at a time, its answer parsed as it arrives."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Answer] | None = None
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream connection's transport: an `asyncio.Transport` on asyncio's own loop, a class of its own (same
        # methods) on uvloop's, which is no subclass of it
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionLost(f"malformed HTTP answer: {exc}"))
            self.close()

    def eof_received(self) -> bool:
        return False  # close: an answer cut short fails in connection_lost

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fail(ConnectionLost(f"connection lost before the whole answer: {exc or 'closed by the server'}"))

    # httptools callbacks
    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        waiter = self._waiter
        self._waiter = None
        if waiter is None or waiter.done():
            self.close()  # an answer nobody waits for (a timed-out request's): the connection is out of step
            return
        status = self._parser.get_status_code()
        headers: dict[str, str] = {}
        encoding = ""
        for raw_name, raw_value in self._headers:
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
            if name.lower() == "content-encoding":
                encoding = value.strip().lower()
        body, reason = b"".join(self._body), self._reason.decode("latin-1") or _reason_of(status)
        self._reason, self._headers, self._body = b"", [], []
        try:
            text = _decoded(body, encoding).decode("utf-8", errors="replace")
        except zlib.error as exc:
            waiter.set_exception(ConnectionLost(f"an answer's {encoding} body could not be decoded: {exc}"))
            self.close()
            return
        if not self._parser.should_keep_alive():
            self.close()
        waiter.set_result(Answer(status, reason, headers, text))

    def request(self, data: bytes) -> asyncio.Future[Answer]:
        assert self.transport is not None and self._waiter is None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self._waiter

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()


def _decoded(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        try:
            return zlib.decompress(body)
        except zlib.error:
            return zlib.decompress(body, -zlib.MAX_WBITS)  # raw deflate, as some servers send it
    return body


def _reason_of(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class Origin:
    """Pooled keep-alive connections to one origin (`https://host[:port]`), shared by every account there: a
    request carries its own headers. A connection serves one request at a time; as many are opened as requests
    are in flight at once, and kept for the next fan-out."""

    def __init__(self, url: str, ssl_context: ssl.SSLContext | None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        https = parts.scheme == "https"
        self._ssl = (ssl_context or ssl.create_default_context(cafile=certifi.where())) if https else None
        self._netloc = parts.netloc
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()

    def head(self, method: str, path: str, headers: Mapping[str, str]) -> bytes:
        """A request's bytes up to its Content-Length value: built once per account and path."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self._netloc}"]
        for name, value in headers.items():
            if any(c in f"{name}{value}" for c in "\r\n\0"):
                raise ValueError(f"header {name!r} holds a line break or NUL")  # never echo the value: a key
            lines.append(f"{name}: {value}")
        lines.append("Content-Length: ")
        return "\r\n".join(lines).encode("latin-1")

    async def send(self, head: bytes, body: bytes, timeout_s: float) -> Answer:
        """One request (`head` from `head()`, then the body) and its answer. Raises TimeoutError, OSError
        (refused, unreachable, DNS) or ConnectionLost (sent, answer cut short: the outcome is unknown)."""
        async with asyncio.timeout(timeout_s):
            connection = self._take() or await self._connect()
            try:
                answer = await connection.request(b"%s%d\r\n\r\n%s" % (head, len(body), body))
            except BaseException:
                connection.close()  # mid-answer (a timeout, a cancellation): never reused
                self._open.discard(connection)
                raise
        if connection.lost:
            self._open.discard(connection)
        else:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        return answer

    def _take(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if not connection.lost and now - connection.idle_since < IDLE_S:
                return connection
            connection.close()
            self._open.discard(connection)
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        server_hostname = self.host if self._ssl is not None else None
        _, connection = await loop.create_connection(
            _Connection, self.host, self.port, ssl=self._ssl, server_hostname=server_hostname
        )
        self._open.add(connection)
        return connection

    def close(self) -> None:
        for connection in self._open:
            connection.close()
        self._open.clear()
        self._idle.clear()


class Origins:
    """One `Origin` per exchange host of the process."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context
        self._origins: dict[str, Origin] = {}

    def for_url(self, url: str) -> Origin:
        parts = urlsplit(url)
        key = f"{parts.scheme}://{parts.netloc}"
        origin = self._origins.get(key)
        if origin is None:
            self._origins[key] = origin = Origin(key, self._ssl)
        return origin

    def close(self) -> None:
        for origin in self._origins.values():
            origin.close()
        self._origins.clear()

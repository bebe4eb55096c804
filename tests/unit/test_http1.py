"""The order path's HTTP/1.1 connections against a scripted server on a real socket: keep-alive reuse, the body
encodings an exchange may answer with, and every way an answer can go wrong (cut short, late, malformed, a
connection the server closed while idle), none of which may leave a connection in the pool out of step."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from bot.venue.http1 import ConnectionLost, Origin
from tests.daemon_harness import wait_until

Script = Callable[[bytes], bytes | None]  # the request's bytes -> the answer's bytes (None: close at once)


def ok(body: bytes = b'{"status":"FILLED"}', *extra: str) -> bytes:
    head = ["HTTP/1.1 200 OK", "Content-Type: application/json", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class Server:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.requests: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length"))
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                answer = self.script(request)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def serving(script: Script) -> AsyncIterator[tuple[Server, Origin]]:
    server = Server(script)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    origin = Origin(f"http://127.0.0.1:{port}", None)
    try:
        yield server, origin
    finally:
        origin.close()
        listener.close()
        await listener.wait_closed()


def head_of(origin: Origin) -> bytes:
    return origin.head("POST", "/fapi/v1/order", {"X-MBX-APIKEY": "key", "Content-Type": "text/plain"})


async def test_requests_share_one_kept_alive_connection_and_reach_the_server_byte_for_byte() -> None:
    async with serving(lambda _: ok()) as (server, origin):
        for n in range(3):
            answer = await origin.send(head_of(origin), b"a=%d" % n, 5)
            assert (answer.status, answer.reason, answer.text) == (200, "OK", '{"status":"FILLED"}')
        assert server.connections == 1
        port = origin.port
        assert (
            server.requests[0]
            == (
                f"POST /fapi/v1/order HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-MBX-APIKEY: key\r\n"
                "Content-Type: text/plain\r\nContent-Length: 3\r\n\r\na=0"
            ).encode()
        )


async def test_answers_in_parallel_open_as_many_connections_as_are_in_flight_then_reuse_them() -> None:
    async with serving(lambda _: ok()) as (server, origin):
        await asyncio.gather(*(origin.send(head_of(origin), b"x", 5) for _ in range(5)))
        opened = server.connections
        assert 1 <= opened <= 5
        await asyncio.gather(*(origin.send(head_of(origin), b"x", 5) for _ in range(opened)))
        assert server.connections == opened


async def test_chunked_gzip_answers_and_repeated_headers_are_read_as_aiohttp_reads_them() -> None:
    payload = gzip.compress(b'{"code":-2019,"msg":"Margin is insufficient."}')
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (payload[:7], payload[7:])) + b"0\r\n\r\n"
    answer_bytes = (
        b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n"
        b"X-MBX-USED-WEIGHT-1M: 3\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n" + chunks
    )
    async with serving(lambda _: answer_bytes) as (_, origin):
        answer = await origin.send(head_of(origin), b"x", 5)
    assert (answer.status, answer.reason) == (400, "Bad Request")
    assert answer.text == '{"code":-2019,"msg":"Margin is insufficient."}'
    assert answer.headers["X-MBX-USED-WEIGHT-1M"] == "3"
    assert answer.headers["Set-Cookie"] == "a=1, b=2"


async def test_an_answer_that_says_close_is_not_reused() -> None:
    async with serving(lambda _: ok(b"{}", "Connection: close")) as (server, origin):
        await origin.send(head_of(origin), b"x", 5)
        await origin.send(head_of(origin), b"x", 5)
        assert server.connections == 2


async def test_a_connection_the_server_closed_while_idle_is_replaced_not_written_to() -> None:
    async with serving(lambda _: ok()) as (server, origin):
        await origin.send(head_of(origin), b"x", 5)
        server.writers[0].close()  # the server's keep-alive timeout
        await wait_until(lambda: all(c.lost for c in origin._idle))
        answer = await origin.send(head_of(origin), b"y", 5)
        assert answer.status == 200 and server.connections == 2


async def test_an_answer_cut_short_raises_connection_lost_and_the_connection_is_dropped() -> None:
    half = ok(b'{"status":"FILLED","orderId":1}')[:-10]

    def script(request: bytes) -> bytes | None:
        return half if request.endswith(b"x") else ok()

    async def cut(server: Server) -> None:
        await wait_until(lambda: len(server.requests) == 1)
        await asyncio.sleep(0)
        server.writers[0].close()

    async with serving(script) as (server, origin):
        with pytest.raises(ConnectionLost):
            await asyncio.gather(origin.send(head_of(origin), b"x", 5), cut(server))
        assert (await origin.send(head_of(origin), b"y", 5)).status == 200
        assert server.connections == 2


async def test_a_connection_closed_without_an_answer_raises_connection_lost() -> None:
    async with serving(lambda _: None) as (_, origin):
        with pytest.raises(ConnectionLost):
            await origin.send(head_of(origin), b"x", 5)


async def test_a_late_answer_times_out_and_its_connection_is_never_reused() -> None:
    answers: list[bytes] = []

    def script(_: bytes) -> bytes | None:
        return answers.pop(0) if answers else b""  # the first request: no answer (yet)

    async with serving(script) as (server, origin):
        with pytest.raises(TimeoutError):
            await origin.send(head_of(origin), b"x", 0.2)
        answers.append(ok(b'{"second":true}'))
        answer = await origin.send(head_of(origin), b"y", 5)
        assert answer.text == '{"second":true}'  # not the first request's answer
        assert server.connections == 2


async def test_a_malformed_answer_raises_connection_lost() -> None:
    async with serving(lambda _: b"HTTP/1.1 abc nonsense\r\n\r\n") as (_, origin):
        with pytest.raises(ConnectionLost, match="malformed"):
            await origin.send(head_of(origin), b"x", 5)


def test_a_header_with_a_line_break_is_refused_without_echoing_it() -> None:
    origin = Origin("https://fapi.binance.com", None)
    with pytest.raises(ValueError, match="line break") as refused:
        origin.head("POST", "/fapi/v1/order", {"X-MBX-APIKEY": "secret-key\r\nX-Evil: 1"})
    assert "secret-key" not in str(refused.value)


def test_only_http_urls_are_origins() -> None:
    with pytest.raises(ValueError, match="not an http"):
        Origin("ftp://example.com", None)


def test_requests_go_out_on_an_event_loop_whose_transports_are_not_asyncio_classes() -> None:
    """uvloop's transports (uvloop comes with ccxt) do not subclass `asyncio.Transport`: an embedding that runs
    the daemon's venues on it still sends its orders, rather than failing each in `connection_made` (every
    outcome unknown, then every order abandoned after its attempts)."""
    import uvloop

    async def three_requests() -> list[int]:
        async with serving(lambda _: ok()) as (server, origin):
            answers = [await origin.send(head_of(origin), b"a=%d" % n, 5) for n in range(3)]
            assert server.connections == 1
            return [a.status for a in answers]

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(three_requests()) == [200, 200, 200]

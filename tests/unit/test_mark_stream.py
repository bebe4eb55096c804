"""The mark-price stream read raw (`bot/venue/marks.py`): a push decoded to the four fields the bot uses, a bad
push or row skipped with the rest kept, a stream gone silent or closed taken for dead and reconnected, and the
URL ccxt.pro would subscribe at. The daemon's use of it against the paper exchange is in
tests/integration/test_daemon_marks.py; here a loopback websocket server plays the exchange's edge cases."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import aiohttp
import ccxt.pro as ccxt_pro
from aiohttp import web

from bot.venue.binance_compat import build_binanceusdm
from bot.venue.marks import Funding, Marks, MarkStream, decode, mark_stream_url
from tests.daemon_harness import wait_until

D = Decimal

# one row of `!markPrice@arr@1s` as Binance documents it (USDⓈ-M "Mark Price Stream for All market")
ROW = {
    "e": "markPriceUpdate",
    "E": 1562305380000,
    "s": "BTCUSDT",
    "p": "11185.87786614",
    "i": "11784.62659091",
    "P": "11784.25641265",
    "r": "0.00030000",
    "T": 1562306400000,
}


def test_a_push_gives_each_markets_mark_and_funding() -> None:
    eth = {**ROW, "s": "ETHUSDT", "p": "3000.10", "r": "-0.0001", "T": 1562306400000}
    marks, funding = decode(json.dumps([ROW, eth]))
    assert marks == {"BTCUSDT": D("11185.87786614"), "ETHUSDT": D("3000.10")}
    assert funding == {"BTCUSDT": (D("0.00030000"), 1562306400000), "ETHUSDT": (D("-0.0001"), 1562306400000)}
    assert decode(json.dumps(ROW)) == ({"BTCUSDT": D("11185.87786614")}, {"BTCUSDT": (D("0.0003"), 1562306400000)})


def test_a_bad_row_is_skipped_and_the_rest_of_the_push_kept() -> None:
    rows = [
        ROW,
        {**ROW, "s": "XUSDT", "p": "not a number"},  # no mark; its funding stands
        {**ROW, "s": "YUSDT", "p": "0", "r": "", "T": 0},  # no mark, no funding rate
        {**ROW, "s": "ZUSDT", "p": "NaN", "T": "soon"},  # neither
        {"s": 7, "p": "1"},  # no symbol
        "text",
        None,
    ]
    marks, funding = decode(json.dumps(rows))
    assert marks == {"BTCUSDT": D("11185.87786614")}
    assert funding == {"BTCUSDT": (D("0.0003"), 1562306400000), "XUSDT": (D("0.0003"), 1562306400000)}


class Log:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def _add(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))

    info = warning = error = _add

    def names(self) -> list[str]:
        return [e for e, _ in self.events]


Script = Callable[[web.WebSocketResponse, int], Awaitable[None]]


@asynccontextmanager
async def exchange(script: Script) -> AsyncIterator[tuple[str, list[str]]]:
    """A websocket server on 127.0.0.1 playing `script(ws, connection number)` on each connection; yields the
    stream's URL and the paths asked for."""
    paths: list[str] = []

    async def handle(request: web.Request) -> web.WebSocketResponse:
        paths.append(request.path)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        await script(ws, len(paths))
        return ws

    app = web.Application()
    app.router.add_get("/market/ws/{name}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"ws://127.0.0.1:{port}/market/ws/!markPrice@arr@1s", paths
    finally:
        await runner.cleanup()


@asynccontextmanager
async def following(url: str, silent_s: float = 10.0) -> AsyncIterator[tuple[list[tuple[Marks, Funding]], Log]]:
    """`MarkStream.run` in a task until the block ends; yields the updates it handed on and its log."""
    updates: list[tuple[Marks, Funding]] = []
    log, stopping = Log(), asyncio.Event()
    async with aiohttp.ClientSession() as session:
        stream = MarkStream(url, lambda: session, 5.0, lambda: 0, log, silent_s=silent_s)
        task = asyncio.create_task(stream.run(lambda m, f: updates.append((m, f)), stopping))
        try:
            yield updates, log
        finally:
            stopping.set()
            await asyncio.wait_for(task, 10)  # returns once stopped, however it was waiting


async def test_a_push_that_is_not_json_is_logged_and_the_stream_goes_on() -> None:
    async def script(ws: web.WebSocketResponse, _: int) -> None:
        await ws.send_str("<html>maintenance</html>")
        await ws.send_str(json.dumps([ROW]))
        await ws.receive()  # until the client goes

    async with exchange(script) as (url, paths), following(url) as (updates, log):
        await wait_until(lambda: bool(updates))
        assert updates == [({"BTCUSDT": D("11185.87786614")}, {"BTCUSDT": (D("0.0003"), 1562306400000)})]
        assert log.names() == ["mark_stream_malformed", "mark_stream_connected"]
        assert paths == ["/market/ws/!markPrice@arr@1s"]


async def test_a_silent_or_closed_stream_is_reconnected() -> None:
    async def script(ws: web.WebSocketResponse, connection: int) -> None:
        if connection == 1:
            await ws.send_str(json.dumps([ROW]))
            await ws.close()  # the exchange ends the connection (as Binance does after 24 hours)
        elif connection == 2:
            await ws.receive()  # connected, then silent: the client gives up after `silent_s`
        else:
            await ws.send_str(json.dumps([{**ROW, "p": "11200"}]))
            await ws.receive()

    async with exchange(script) as (url, paths), following(url, silent_s=0.5) as (updates, log):
        await wait_until(lambda: len(updates) == 2)
        assert [u[0] for u in updates] == [{"BTCUSDT": D("11185.87786614")}, {"BTCUSDT": D("11200")}]
        assert log.names() == ["mark_stream_connected", "mark_stream_disconnected", "mark_stream_resumed"]
        assert len(paths) == 3  # the closed one, the silent one, the one that pushes


async def test_the_url_is_where_ccxt_pro_subscribes_to_mark_prices() -> None:
    live = ccxt_pro.binanceusdm()
    demo = ccxt_pro.binanceusdm()
    demo.enable_demo_trading(True)
    paper = build_binanceusdm("http://127.0.0.1:8080", "key", "secret", stream=True)
    try:
        assert mark_stream_url(live) == "wss://fstream.binance.com/market/ws/!markPrice@arr@1s"
        assert mark_stream_url(demo) == "wss://fstream.binancefuture.com/market/ws/!markPrice@arr@1s"
        assert mark_stream_url(paper) == "ws://127.0.0.1:8080/market/ws/!markPrice@arr@1s"
    finally:
        for client in (live, demo, paper):
            await client.close()

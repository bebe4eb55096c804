"""The paper exchange's mark-price streams as ccxt.pro consumes them (watch_mark_price, watch_mark_prices), and
as Binance serves them by URL, combined, and by SUBSCRIBE, with the funding rate and the next funding time."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import aiohttp

from tests.conftest import BTC, ETH
from tests.paper_harness import Paper


async def test_ccxt_pro_watches_one_mark_price_and_all_of_them(paper: Paper) -> None:
    ex = paper.client("alice", stream=True)
    await ex.load_markets()
    await paper.set_price("BTCUSDT", "51000", mark="50950")
    ticker = await asyncio.wait_for(ex.watch_mark_price(BTC), 10)
    assert ticker["symbol"] == BTC and Decimal(str(ticker["markPrice"])) == Decimal("50950")
    assert ticker["info"]["e"] == "markPriceUpdate" and "r" in ticker["info"] and int(ticker["info"]["T"]) > 0
    tickers = await asyncio.wait_for(ex.watch_mark_prices(), 10)
    assert ETH in tickers or BTC in tickers


async def test_streams_by_url_combined_and_by_subscribe(paper: Paper) -> None:
    base = paper.url.replace("http", "ws")
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{base}/ws/ethusdt@markPrice@1s") as ws:
            event = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
            assert (event["e"], event["s"]) == ("markPriceUpdate", "ETHUSDT") and event["p"].startswith("3000")
        async with session.ws_connect(f"{base}/stream?streams=btcusdt@markPrice@1s/!markPrice@arr@1s") as ws:
            seen = {json.loads((await asyncio.wait_for(ws.receive(), 5)).data)["stream"] for _ in range(2)}
            assert seen == {"btcusdt@markPrice@1s", "!markPrice@arr@1s"}
        async with session.ws_connect(f"{base}/market/ws/0") as ws:
            await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": ["!markPrice@arr@1s"], "id": 7}))
            assert json.loads((await ws.receive()).data) == {"result": None, "id": 7}
            rows = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
            assert {r["s"] for r in rows} >= {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
            await ws.send_str(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 8}))
            assert json.loads((await ws.receive()).data) == {"result": ["!markPrice@arr@1s"], "id": 8}

"""Starts the paper exchange on loopback and hands out real ccxt clients and a control API session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import aiohttp

from bot.paper.server import PaperConfig, PaperExchange
from bot.venue.binance_compat import build_binance_spot, build_binanceusdm

ACCOUNTS: dict[str, Any] = {
    "accounts": [
        {
            "name": "lead",
            "api_key": "lead-key-000001",
            "api_secret": "lead-secret-000001",
            "email": "lead@paper.local",
            "usdt": "20000",
            "spot": {"USDT": "20000"},
        },
        {
            "name": "alice",
            "api_key": "alice-key-000001",
            "api_secret": "alice-secret-000001",
            "email": "alice@paper.local",
            "usdt": "1000",
            "spot": {"USDT": "1000"},
        },
        {
            "name": "bob",
            "api_key": "bob-key-000001",
            "api_secret": "bob-secret-000001",
            "email": "bob@paper.local",
            "usdt": "10000",
            "spot": {"USDT": "10000", "BTC": "0.5"},
        },
    ],
    "master": {"api_key": "master-key-000001", "api_secret": "master-secret-000001"},
    "prices": {"BTCUSDT": "50000", "ETHUSDT": "3000", "SOLUSDT": "150"},
    "commission": {"maker": "0.0002", "taker": "0.0005"},
}


class Paper:
    """A running paper exchange (in this process, or any at `url`) with its accounts file."""

    def __init__(
        self, url: str, config: dict[str, Any], session: aiohttp.ClientSession, exchange: PaperExchange | None = None
    ) -> None:
        self.exchange = exchange
        self.url = url
        self.config = config
        self.session = session
        self._clients: list[Any] = []

    def keys(self, name: str) -> tuple[str, str]:
        if name == "master":
            return self.config["master"]["api_key"], self.config["master"]["api_secret"]
        spec = next(a for a in self.config["accounts"] if a["name"] == name)
        return spec["api_key"], spec["api_secret"]

    def client(self, name: str, *, stream: bool = False, timeout_ms: int = 10_000) -> Any:
        key, secret = self.keys(name)
        client = build_binanceusdm(self.url, key, secret, stream=stream, timeout_ms=timeout_ms)
        self._clients.append(client)
        return client

    def spot_client(self, name: str, *, stream: bool = False, timeout_ms: int = 10_000) -> Any:
        """A ccxt `binance` (spot) client for the account."""
        key, secret = self.keys(name)
        client = build_binance_spot(self.url, key, secret, stream=stream, timeout_ms=timeout_ms)
        self._clients.append(client)
        return client

    async def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with self.session.request(method, self.url + "/_paper" + path, json=body) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def set_price(self, symbol: str, price: str, mark: str | None = None) -> None:
        body: dict[str, Any] = {"prices": {symbol: price}}
        if mark is not None:
            body["marks"] = {symbol: mark}
        await self.control("POST", "/prices", body)

    async def state(self, name: str) -> Any:
        return await self.control("GET", f"/accounts/{name}")

    async def wallet(self, name: str) -> Decimal:
        return Decimal((await self.state(name))["account"]["totalWalletBalance"])

    @property
    def running(self) -> PaperExchange:
        assert self.exchange is not None, "this paper exchange runs in another process"
        return self.exchange

    async def close(self) -> None:
        await asyncio.gather(*(client.close() for client in self._clients))


@asynccontextmanager
async def running_paper(config: dict[str, Any] | None = None) -> AsyncIterator[Paper]:
    config = config or ACCOUNTS
    exchange = PaperExchange(PaperConfig.model_validate(config))
    url = await exchange.start("127.0.0.1", 0)
    session = aiohttp.ClientSession()
    paper = Paper(url, config, session, exchange)
    try:
        yield paper
    finally:
        await paper.close()
        await session.close()
        await exchange.stop()

"""The paper exchange as a running aiohttp server: composition, accounts file, background price walk."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import time
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.paper.api import BinanceApi
from bot.paper.control import ControlApi
from bot.paper.faults import Faults
from bot.paper.ledger import Ledger
from bot.paper.limits import Limits, LimitSettings
from bot.paper.markets import DEFAULT_MARKETS, SPOT_MARKETS, synthetic_markets
from bot.paper.marketstream import MarketStreams
from bot.paper.spot import SPOT_COMMISSION, SpotLedger
from bot.paper.spot_api import SpotApi, SpotUserStreams
from bot.paper.state import Account
from bot.paper.userstream import UserStreams


class Commission(BaseModel):
    model_config = ConfigDict(extra="forbid")

    maker: Decimal = Decimal("0.0002")
    taker: Decimal = Decimal("0.0005")


class AccountSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    api_key: str = Field(min_length=8, repr=False)
    api_secret: str = Field(min_length=8, repr=False)
    email: str = Field(min_length=3)
    usdt: Decimal = Decimal(0)
    commission: Commission | None = None  # this account's rates (a VIP tier, a discount); else the exchange's
    spot: dict[str, Decimal] = Field(default_factory=dict)  # the spot wallet's free balances per asset
    spot_commission: Commission | None = None

    @field_validator("usdt")
    @classmethod
    def _not_negative(cls, value: Decimal) -> Decimal:
        if value < 0 or not value.is_finite():
            raise ValueError("must be a finite amount >= 0")
        return value

    @field_validator("spot")
    @classmethod
    def _balances(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for asset, amount in value.items():
            if amount < 0 or not amount.is_finite() or amount != amount.quantize(Decimal("1e-8")):
                raise ValueError(f"{asset}: must be a finite amount >= 0 with at most 8 decimals")
        return value


class MasterSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: str = Field(min_length=8, repr=False)
    api_secret: str = Field(min_length=8, repr=False)
    email: str = "master@paper.local"
    usdt: Decimal = Decimal(0)


class Funding(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rate: Decimal = Decimal("0.0001")
    interval_s: float = Field(gt=0)


class PaperConfig(BaseModel):
    """The accounts file of `bot paper-exchange --accounts FILE`."""

    model_config = ConfigDict(extra="forbid")

    accounts: list[AccountSpec] = Field(default_factory=list)
    master: MasterSpec | None = None
    prices: dict[str, Decimal] = Field(default_factory=dict)
    commission: Commission = Field(default_factory=Commission)
    spot_commission: Commission = Field(
        default_factory=lambda: Commission(maker=SPOT_COMMISSION[0], taker=SPOT_COMMISSION[1])
    )
    funding: Funding | None = None
    limits: LimitSettings = Field(default_factory=LimitSettings)  # Binance's, on by default

    @classmethod
    def load(cls, path: Path) -> PaperConfig:
        try:
            return cls.model_validate(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: cannot read accounts file: {exc}") from None
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"{path}: {problems}") from None


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class PaperExchange:
    """A Binance USDⓈ-M compatible exchange on loopback, for ccxt and ccxt.pro clients."""

    def __init__(self, config: PaperConfig, extra_markets: int = 0, clock_ms: Any = wall_clock_ms) -> None:
        self.config = config
        self.streams = UserStreams(clock_ms)
        markets = DEFAULT_MARKETS + synthetic_markets(extra_markets)
        self.ledger = Ledger(
            markets, dict(config.prices), (config.commission.maker, config.commission.taker), clock_ms, self.streams
        )
        self.streams.ledger = self.ledger
        self.spot_streams = SpotUserStreams(clock_ms)
        spot_rates = (config.spot_commission.maker, config.spot_commission.taker)
        self.spot = SpotLedger(self.ledger, SPOT_MARKETS, spot_rates, self.spot_streams)
        for spec in config.accounts:
            self.add_account(spec.model_dump())
        master_key = None
        if config.master is not None:
            master_key = config.master.api_key
            self.add_account({"name": "master", **config.master.model_dump()})
        self.faults = Faults()
        self.limits = Limits(config.limits, clock_ms)
        self.api = BinanceApi(self.ledger, self.streams, master_key, config.limits)
        self.spot_api = SpotApi(self.api, self.spot, self.spot_streams, self.limits)
        self.control = ControlApi(self)
        self.app = web.Application(middlewares=[self.control.guard, self.limits.middleware, self.faults.middleware])
        self.market_streams = MarketStreams(self.ledger, clock_ms)
        self.api.add_to(self.app, self.market_streams, self.spot_streams)
        self.app.router.add_get("/ws-api/v3", self._spot_ws_api)
        self.control.add_to(self.app)
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._walk: asyncio.Task[None] | None = None
        self.base_url = ""

    async def _spot_ws_api(self, request: web.Request) -> web.StreamResponse:
        return await self.spot_streams.handle_ws_api(request, self.ledger.by_key)

    def add_account(self, data: dict[str, Any]) -> None:
        spec = AccountSpec.model_validate({k: v for k, v in data.items() if k in AccountSpec.model_fields})
        if spec.name in self.ledger.accounts or self.ledger.by_key(spec.api_key) is not None:
            raise ValueError(f"account {spec.name!r} or its key exists already")
        account = Account(spec.name, spec.api_key, spec.api_secret, spec.email, spec.usdt)
        if spec.commission is not None:
            account.commission = (spec.commission.maker, spec.commission.taker)
        if spec.spot_commission is not None:
            account.spot.commission = (spec.spot_commission.maker, spec.spot_commission.taker)
        for asset, amount in spec.spot.items():
            account.spot.balance(asset).free = amount
        self.ledger.add_account(account)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serves on host:port (0 picks a free port) and returns the base URL."""
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        bound_port = sockets[0].getsockname()[1]
        self.base_url = f"http://{host}:{bound_port}"
        self._spawn(self._expire_listen_keys())
        if self.config.funding is not None:
            self._spawn(self._funding_loop(self.config.funding.rate, self.config.funding.interval_s))
        return self.base_url

    async def stop(self) -> None:
        await self.stop_random_walk()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.streams.drop_connections()
        self.spot_streams.drop_connections()
        await self.market_streams.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def start_random_walk(self, seed: int, interval_s: float, volatility: Decimal) -> None:
        if self._walk is not None:
            self._walk.cancel()
        self._walk = self._spawn(self._random_walk(random.Random(seed), interval_s, volatility))

    async def stop_random_walk(self) -> None:
        if self._walk is not None:
            self._walk.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._walk
            self._walk = None

    def walk_step(self, rng: random.Random, volatility: Decimal) -> None:
        """Moves every price by a seeded Gaussian step, rounded to its tick."""
        for symbol, spec in self.ledger.markets.items():
            last = self.ledger.prices[symbol].last
            step = Decimal(str(rng.gauss(0.0, 1.0))) * volatility
            price = (last * (1 + step) / spec.tick_size).to_integral_value(ROUND_HALF_EVEN) * spec.tick_size
            self.ledger.set_price(symbol, max(price, spec.min_price))

    async def _random_walk(self, rng: random.Random, interval_s: float, volatility: Decimal) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.walk_step(rng, volatility)

    async def _funding_loop(self, rate: Decimal, interval_s: float) -> None:
        """Funding as Binance settles it: at every multiple of the interval (the `nextFundingTime` advertised),
        at the rate advertised before it (`lastFundingRate`)."""
        self.ledger.funding_interval_ms = int(interval_s * 1000)
        for state in self.ledger.prices.values():
            state.funding_rate = rate
        while True:
            due = self.ledger.next_funding_ms(self.ledger.clock_ms())
            await asyncio.sleep(max(0.0, (due - self.ledger.clock_ms()) / 1000))
            self.ledger.apply_funding()

    async def _expire_listen_keys(self) -> None:
        while True:
            await asyncio.sleep(30)
            self.streams.expire_keys(force=False)


async def serve_forever(config: PaperConfig, host: str, port: int, extra_markets: int = 0) -> None:
    """Runs until SIGTERM or SIGINT, then closes every connection and returns."""
    exchange = PaperExchange(config, extra_markets)
    url = await exchange.start(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    accounts = [a.name for a in config.accounts]
    print(json.dumps({"event": "paper_exchange_started", "url": url, "accounts": accounts}), flush=True)
    try:
        await stop.wait()
    finally:
        await exchange.stop()
        print(json.dumps({"event": "paper_exchange_stopped", "url": url}), flush=True)

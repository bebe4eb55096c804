"""The composition root: builds everything from Settings, runs the tasks, stops cleanly on a signal."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import signal
from typing import Any, TextIO

from bot import logs
from bot.engine.clock import Clock, SystemClock
from bot.engine.lead import LeadPoller
from bot.engine.mirror import FollowerMirror, MirrorConfig
from bot.engine.prices import MarkPrices
from bot.settings import Settings
from bot.store.db import Store
from bot.venue.ccxt_venue import AccountVenue, build_client, market_rules
from bot.venue.errors import Fatal, VenueError

EXIT_OK = 0
EXIT_UNREACHABLE = 1


def _lock_state(settings: Settings) -> TextIO | None:
    """An exclusive lock on the state directory: two daemons on one state could send the same intent twice."""
    settings.bot.state_dir.mkdir(parents=True, exist_ok=True)
    handle = (settings.bot.state_dir / "copybot.lock").open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def state_db(settings: Settings) -> Store:
    return Store(settings.bot.state_dir / "copybot.sqlite3")


class Runtime:
    def __init__(self, settings: Settings, clock: Clock | None = None, install_signals: bool = True) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.install_signals = install_signals
        self.log = logs.get()
        self.stopping = asyncio.Event()
        self._wakes: dict[str, asyncio.Event] = {}
        self.mirrors: dict[str, FollowerMirror] = {}

    def stop(self) -> None:
        if not self.stopping.is_set():
            self.log.info("shutdown_requested")
        self.stopping.set()

    async def run(self) -> int:
        lock = _lock_state(self.settings)
        if lock is None:
            self.log.error(
                "state_locked",
                state_dir=str(self.settings.bot.state_dir),
                reason="another bot process is running with this state directory",
            )
            return EXIT_UNREACHABLE
        try:
            return await self._run_locked()
        finally:
            lock.close()

    async def _run_locked(self) -> int:
        store = state_db(self.settings)
        timeout = self.settings.bot.request_timeout_ms
        venues = {a.name: AccountVenue(a.name, build_client(a, timeout)) for a in self.settings.accounts()}
        try:
            return await self._run(store, venues)
        finally:
            await asyncio.gather(*(v.close() for v in venues.values()), return_exceptions=True)
            store.close()

    async def _startup(self, venues: dict[str, AccountVenue]) -> dict[str, Any] | None:
        """Loads markets once, then makes sure every account answers; None if any does not."""
        lead = venues[self.settings.lead.name]
        try:
            markets = await lead.load_markets()
        except VenueError as exc:
            self.log.error("startup_account_unreachable", account=lead.name, error=str(exc))
            return None
        failed = False
        for name, venue in venues.items():
            try:
                if venue is not lead:
                    await venue.load_markets(markets)
                await venue.equity()
            except VenueError as exc:
                self.log.error("startup_account_unreachable", account=name, error=str(exc))
                failed = True
        return None if failed else markets

    async def _run(self, store: Store, venues: dict[str, AccountVenue]) -> int:
        if self.install_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
        markets = await self._startup(venues)
        if markets is None:
            self.log.error("startup_failed", reason="an account is unreachable; refusing to trade on a partial picture")
            return EXIT_UNREACHABLE
        rules = market_rules(markets)
        lead_venue = venues[self.settings.lead.name]
        prices = MarkPrices(lead_venue, self.clock)
        poller = LeadPoller(
            lead_venue, store, prices, self.clock, self.log, self._wake_all, self.settings.bot.poll_interval_s
        )
        await poller.baseline()
        config = MirrorConfig(
            max_leverage=self.settings.protection.max_leverage,
            equity_max_age_ms=int(self.settings.bot.poll_interval_s * 1000),
        )
        for follower in self.settings.followers:
            mirror = FollowerMirror(follower, venues[follower.name], store, rules, prices, self.clock, config, self.log)
            if await mirror.activate():
                self.mirrors[follower.name] = mirror
                self._wakes[follower.name] = asyncio.Event()
        self.log.info(
            "daemon_started",
            followers=sorted(self.mirrors),
            lead_source=self.settings.bot.lead_source,
            last_lead_change=store.last_seq(),
        )
        workers = [asyncio.create_task(self._worker(m), name=f"follower:{n}") for n, m in self.mirrors.items()]
        helpers = [
            asyncio.create_task(poller.run(self.stopping), name="lead"),
            asyncio.create_task(self._heartbeat(store, poller), name="heartbeat"),
        ]
        await self.stopping.wait()
        await self._shutdown(workers, helpers)
        self.log.info("daemon_stopped", last_lead_change=store.last_seq())
        return EXIT_OK

    async def _shutdown(self, workers: list[asyncio.Task[None]], helpers: list[asyncio.Task[None]]) -> None:
        """Stops taking lead changes; lets in-flight orders finish within the grace period."""
        for wake in self._wakes.values():
            wake.set()
        await asyncio.wait([*workers, *helpers], timeout=self.settings.bot.shutdown_grace_s)
        for task in [*workers, *helpers]:
            if not task.done():
                self.log.warning("shutdown_task_cancelled", task=task.get_name())
                task.cancel()
        for task in [*workers, *helpers]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _wake_all(self) -> None:
        for wake in self._wakes.values():
            wake.set()

    async def _worker(self, mirror: FollowerMirror) -> None:
        """One follower's loop: one slow or failing follower never holds up the others."""
        wake = self._wakes[mirror.name]
        interval_ms = int(self.settings.bot.reconcile_interval_s * 1000)
        next_reconcile = 0  # reconcile at start, then every reconcile_interval_s
        backoff = 1.0
        while not self.stopping.is_set():
            wake.clear()
            try:
                if self.clock.now_ms() >= next_reconcile:
                    await mirror.reconcile()
                    next_reconcile = self.clock.now_ms() + interval_ms
                await mirror.catch_up(self.stopping)
                backoff = 1.0
            except Fatal as exc:
                mirror.log.error("follower_account_failed", error=str(exc))
                backoff = min(backoff * 2, 30.0)
                await self._pause(backoff)
                continue
            except VenueError as exc:
                mirror.log.error("follower_sync_failed", error=str(exc))
                backoff = min(backoff * 2, 30.0)
                await self._pause(backoff)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=self.settings.bot.poll_interval_s)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)

    async def _heartbeat(self, store: Store, poller: LeadPoller) -> None:
        while not self.stopping.is_set():
            await self._pause(self.settings.bot.heartbeat_interval_s)
            if self.stopping.is_set():
                return
            last = store.last_seq()
            lag = {row.name: last - row.last_seq for row in store.followers() if row.name in self.mirrors}
            self.log.info(
                "heartbeat",
                last_lead_change=last,
                lead_polls=poller.polls,
                last_poll_age_ms=self.clock.now_ms() - poller.last_poll_ms if poller.last_poll_ms else -1,
                follower_lag=lag,
                max_lag=max(lag.values(), default=0),
            )

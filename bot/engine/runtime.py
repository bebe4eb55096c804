"""The composition root: builds everything from Settings, runs the tasks, reloads on SIGHUP, stops on a signal."""

from __future__ import annotations

import asyncio
import gc
import signal
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot import logs
from bot.core.model import FollowerState
from bot.engine.clock import Clock, SystemClock
from bot.engine.fanout import FanOut
from bot.engine.journal import PlanJournal
from bot.engine.kinds import KINDS
from bot.engine.lead import LeadPoller
from bot.engine.lifecycle import Lifecycle, protection_of
from bot.engine.mirror import FollowerMirror, MirrorConfig
from bot.engine.periodic import commission_rates, heartbeat, pause, settle_loop
from bot.engine.prices import MarkPrices
from bot.engine.reload import account_secrets, followers_diff, restart_only_changes, unknown_symbols
from bot.engine.settle import Settler
from bot.engine.startup import check_accounts
from bot.engine.streams import lead_stream, mark_stream
from bot.engine.supervisor import (
    EXIT_CONFIG,
    EXIT_LEAD_GONE,
    EXIT_OK,
    EXIT_UNREACHABLE,
    Supervisor,
)
from bot.engine.worker import Worker
from bot.settings import ConfigError, FollowerSettings, Settings, load_settings
from bot.store.db import Store
from bot.store.state_dir import lock_state, open_state
from bot.venue.budget import Budgets, Priority, paced_interval, pass_spacing_s
from bot.venue.ccxt_venue import AccountVenue, build_client, host_of
from bot.venue.errors import VenueError
from bot.venue.http import SharedHttp


class Runtime(Supervisor):
    """Everything built from Settings and run: accounts, mirrors, the fan-out, the lead, the streams, the side
    jobs; reloaded on SIGHUP."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock | None = None,
        install_signals: bool = True,
        config_path: Path | None = None,
        redactor: logs.SecretRedactor | None = None,
    ) -> None:
        self.settings = settings
        self.redactor = redactor
        self.clock = clock or SystemClock()
        self.install_signals = install_signals
        self.config_path = config_path
        super().__init__(logs.get(), settings.bot.shutdown_grace_s)
        self._polled = asyncio.Event()
        self.mirrors: dict[str, FollowerMirror] = {}
        self.reconcile_interval_s = settings.bot.reconcile_interval_s  # stretched to what the budget holds
        self._first_reconcile: dict[str, int] = {}  # the first passes, spread over what the budget gives them
        self.taker_rate = Decimal(0)  # the lead's, assumed for a follower's fills until its own is read
        self._rate_market = ""
        self.kind = KINDS[settings.bot.market]  # futures or spot: picks the venue, rules, mirror and lead poller

    async def run(self) -> int:
        lock = lock_state(self.settings.bot.state_dir)
        if lock is None:
            self.log.error(
                "state_locked",
                state_dir=str(self.settings.bot.state_dir),
                reason="another bot process is running with this state directory",
            )
            return EXIT_UNREACHABLE
        store = open_state(self.settings.bot.state_dir)
        store.on_commit_failure = self._state_commit_failed
        self.venues: dict[str, AccountVenue] = {}
        self.budgets = Budgets(self.settings.bot.max_weight_share, self.log)
        self.http = SharedHttp()
        try:
            return await self._run(store)
        finally:
            await asyncio.gather(*(v.close() for v in self.venues.values()), return_exceptions=True)
            await self.http.close()
            store.close()
            lock.close()

    def _venue(self, account: Any) -> AccountVenue:
        """An account's venue, on its host's request budget (shared by every account on that host)."""
        client = build_client(account, self.settings.bot.request_timeout_ms, self.http)
        lead = self.settings.lead.name if self.settings.lead else None
        treasury = self.settings.treasury.name if self.settings.treasury else None
        priority = {lead: Priority.LEAD, treasury: Priority.SETTLEMENT}.get(account.name, Priority.FOLLOWER)
        budget = self.budgets.for_host(host_of(client))
        venue = self.kind.venue(account.name, client, budget=budget, priority=priority, origins=self.http.orders)
        self.venues[account.name] = venue
        return venue

    async def _startup(self, store: Store, skip: str | None = None) -> dict[str, Any] | None:
        """Every account's venue, then `check_accounts` on them (but `skip`: a lead whose key failed for good,
        whose followers only have their close-outs left); None if any account does not answer."""
        running = {row.name for row in store.followers() if row.state == FollowerState.ACTIVE}
        for account in self.settings.accounts():
            self._venue(account)
        if self.settings.treasury is not None:
            self._venue(self.settings.treasury)
        usable = [v for n, v in self.venues.items() if n != skip]
        started = await check_accounts(usable, running, self.kind.assumes_fee_rate, self.log)
        if started is None:
            return None
        self.market_source, self._rate_market, self.taker_rate = (
            started.market_source,
            started.rate_market,
            started.taker_rate,
        )
        return started.markets

    async def _run(self, store: Store) -> int:
        if self.install_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
            loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        if not self.settings.accounts():
            self.log.error("startup_failed", reason="no accounts configured")
            return EXIT_UNREACHABLE
        lead = self.settings.lead
        gone = store.get_meta("lead_gone")  # the lead's key failed for good: only close-outs are left to finish
        lead_gone = gone is not None and lead is not None and store.get_meta("lead_name") == lead.name
        markets = await self._startup(store, skip=lead.name if lead_gone and lead is not None else None)
        if markets is None:
            self.log.error("startup_failed", reason="an account is unreachable; refusing to trade on a partial picture")
            return EXIT_UNREACHABLE
        self.rules = self.kind.rules(markets)
        self.markets = markets
        problems = unknown_symbols(self.settings, self.rules)
        if problems:
            self.log.error("startup_failed", reason="configuration error", problems=problems)
            return EXIT_CONFIG
        prices_from = self.venues[lead.name if lead and not lead_gone else self.settings.followers[0].name]
        self.prices = MarkPrices(prices_from, self.clock, on_update=self._on_change)  # stop losses on every mark
        self.journal = PlanJournal(store, self.log)
        self.fanout = FanOut(store, self.journal, self.clock, self.log)
        self.lifecycle = Lifecycle(store, protection_of(self.settings.protection), self.clock, self.log)
        for follower in self.settings.followers:
            self._add_mirror(follower, store)
        self.lifecycle.forget_removed(self.mirrors.keys())
        self.settler = Settler(
            self.settings,
            store,
            self.venues,
            self.clock,
            self.log,
            lambda venue, name: self.kind.settlement_equity(venue, store, name),
        )
        stored_lead = store.get_meta("lead_name")
        if lead is None or (stored_lead is not None and stored_lead != lead.name) or lead_gone:
            if lead is None:
                reason = "lead removed from the configuration"
            elif lead_gone:
                reason = gone or "the lead's key failed"
            else:
                reason = f"lead {stored_lead} replaced"
            code = EXIT_LEAD_GONE if lead_gone else EXIT_OK
            await self.lifecycle.end_everything(
                self.mirrors, reason, self.stopping, replaced_by=lead.name if lead and not lead_gone else None
            )
            self.exit_code = code if self.exit_code == EXIT_OK else self.exit_code
            return self.exit_code
        store.set_meta("lead_name", lead.name)
        poller = self.kind.poller(
            self.venues[lead.name],
            store,
            self.prices,
            self.clock,
            self.log,
            self._lead_changed.set,
            self.settings.bot.poll_interval_s,
            on_poll=self._polled.set,
            auth_grace_s=self.settings.bot.lead_auth_grace_s,
        )
        await poller.baseline()
        # boundaries that passed while the daemon was down are snapshotted before any configuration change
        # (an investment changed at this start must not count as the past cycle's PnL) and before any transfer
        await self.settler.snapshot_due()
        self.lifecycle.configure(self.settings.followers, self.mirrors, lead.name)
        await self.lifecycle.review(self._order(), self.mirrors)
        self._pace(store, starting=True)
        # what start-up built (clients, markets, mirrors) lives as long as the daemon: out of the collector's
        # sight, a full collection no longer walks it (it paused fan-outs 45 to 160 ms, issue #12)
        gc.collect()
        gc.freeze()
        self.log.info(
            "daemon_started",
            followers=sorted(self.mirrors),
            lead_source=self.settings.bot.lead_source,
            last_lead_change=store.last_seq(),
        )
        for name in self.mirrors:
            self._start_worker(name, store)
        settle_every_s = min(1.0, self.settings.bot.poll_interval_s)
        self._spawn(settle_loop(self.settler, self.stopping, settle_every_s, self.log), "settlement")
        if self.kind.assumes_fee_rate:
            rates = commission_rates(self._configured, self._rate_market, self.taker_rate, self.stopping)
            self._spawn(rates, "commission-rates")
        fan_out = self.fanout.run(self.mirrors, self._wakes, self._lead_changed, self.stopping, store.last_seq())
        self._fan_out_task = self._spawn(fan_out, "fan-out")
        self._spawn(poller.run(self.stopping), "lead")
        timeout, markets_from = self.settings.bot.request_timeout_ms, self.market_source.client
        if self.kind.mark_stream:  # spot: last prices by REST at a bounded rate instead
            marks = mark_stream(lead, self.http, timeout, self.prices.update, self.clock, self.stopping, self.log)
            self._spawn(marks, "mark-stream")
        if self.settings.bot.lead_source == "stream":
            interval = self.settings.bot.reconcile_interval_s
            follow = lead_stream(
                lead, timeout, markets_from, self.kind.lead_watch, poller, interval, self.clock, self.stopping, self.log
            )
            self._spawn(follow, "lead-stream")
        beat = heartbeat(
            store,
            poller,
            self.budgets,
            lambda: self.mirrors.keys(),
            lambda: self.reconcile_interval_s,
            self.clock,
            self.settings.bot.heartbeat_interval_s,
            self.stopping,
            self.log,
        )
        self._spawn(beat, "heartbeat")
        self._spawn(self._coordinate(store, poller), "lifecycle")
        await self.stopping.wait()
        await self._shutdown()
        self.log.info("daemon_stopped", last_lead_change=store.last_seq(), exit_code=self.exit_code)
        return self.exit_code

    def _order(self) -> list[str]:
        return [f.name for f in self.settings.followers]

    def _configured(self) -> list[FollowerMirror]:
        """The mirrors of the followers configured now, in the configuration's order."""
        return [self.mirrors[n] for n in self._order() if n in self.mirrors]

    def _add_mirror(self, follower: FollowerSettings, store: Store) -> FollowerMirror:
        venue = self.venues.get(follower.name) or self._venue(follower)
        # sizing and the stop loss run on the copy equity estimated between account reads: a lead change never
        # waits for a balance request
        config = MirrorConfig(self.settings.protection.max_leverage, self.taker_rate)
        mirror = self.kind.mirror(follower, venue, store, self.rules, self.prices, self.clock, config, self.log)
        mirror.orders.journal = self.journal
        self.mirrors[follower.name] = mirror
        self._wakes[follower.name] = asyncio.Event()
        return mirror

    def _start_worker(self, name: str, store: Store) -> None:
        worker = Worker(
            self.mirrors[name],
            store,
            self._wakes[name],
            self.clock,
            self.stopping,
            self.settings.bot.poll_interval_s,
            lambda: self.reconcile_interval_s,
            self.kind.reconcile_weight[0],
        )
        first = self._first_reconcile.pop(name, 0)  # spread at start, then every interval
        self._workers[name] = self._spawn(worker.run(first), f"follower:{name}")

    async def _coordinate(self, store: Store, poller: LeadPoller) -> None:
        """After each lead poll: capacity and eligibility; on SIGHUP: the new configuration; the lead's key."""
        while not self.stopping.is_set():
            await pause(self._polled, self.settings.bot.poll_interval_s)
            self._polled.clear()
            if self.stopping.is_set():
                return
            try:
                if self._reload.is_set():
                    self._reload.clear()
                    await self._apply_reload(store)
                    if self.stopping.is_set():
                        return
                if poller.gone_reason is not None:
                    store.set_meta("lead_gone", poller.gone_reason)
                    await self._stop_workers()
                    await self.lifecycle.end_everything(
                        self.mirrors, poller.gone_reason, self.stopping, replaced_by=None
                    )
                    self.exit_code = EXIT_LEAD_GONE
                    self.stop()
                    return
                for name in await self.lifecycle.review(self._order(), self.mirrors):
                    self._wakes[name].set()
            except VenueError as exc:
                self.log.error("lifecycle_review_failed", error=str(exc))

    async def _apply_reload(self, store: Store) -> None:
        """SIGHUP: a configuration that fails validation, or changes what only a restart can apply, changes
        nothing; otherwise every setting takes effect now."""
        assert self.config_path is not None
        try:
            settings = load_settings(self.config_path)
        except ConfigError as exc:
            self.log.error("config_reload_failed", problems=[f"{p}: {r}" for p, r in exc.problems])
            return
        problems = restart_only_changes(self.settings, settings) + unknown_symbols(settings, self.rules)
        if problems:
            self.log.error("config_reload_failed", problems=problems, changed=False)
            return
        if self.redactor is not None:
            for secret in account_secrets(settings):
                self.redactor.add(secret)
        lead = settings.lead
        if lead is None or lead.name != (self.settings.lead.name if self.settings.lead else None):
            self.settings = settings
            await self._stop_workers()
            await self.lifecycle.end_everything(
                self.mirrors,
                "lead removed from the configuration" if lead is None else "lead replaced in the configuration",
                self.stopping,
                replaced_by=lead.name if lead is not None else None,
            )
            self.exit_code = EXIT_OK
            self.stop()
            return
        removed, kept, added = followers_diff(self.settings, settings)
        self.settings = settings
        self.lifecycle.protection = protection_of(settings.protection)
        self.settler.configure(settings)
        for mirror in self.mirrors.values():
            mirror.set_max_leverage(settings.protection.max_leverage)
        for name in removed:
            self.log.info("follower_removed", follower=name)
            self.mirrors[name].request_end(FollowerState.ENDED, "removed from the configuration")
            self._wakes[name].set()
        for follower in kept:
            if follower.name in self.mirrors:
                self.mirrors[follower.name].settings = follower
        for follower in [*added, *(f for f in kept if f.name not in self.mirrors)]:
            name = follower.name
            try:
                venue = self.venues.get(name) or self._venue(follower)
                await venue.load_markets(self.market_source)
            except VenueError as exc:
                self.log.error("follower_account_failed", follower=name, error=str(exc))
                continue
            if name in self._workers and not self._workers[name].done():
                self._workers[name].cancel()  # removed and added back before its close-out finished
            self._add_mirror(follower, store)
            self._start_worker(name, store)
            self.log.info("follower_added", follower=name)
        self.lifecycle.configure(settings.followers, self.mirrors, lead.name)
        self._pace(store)
        self.log.info("config_reloaded", followers=sorted(f.name for f in settings.followers))
        for wake in self._wakes.values():
            wake.set()

    def _pace(self, store: Store, starting: bool = False) -> None:
        """The reconciliation interval the request budget can hold for every follower (SPEC 12): it stretches
        rather than the budget breaking. Logged at start and on each reload. At start, the first passes are
        spread over the time the budget needs for them, so that no worker waits in its queue meanwhile."""
        configured = self.settings.bot.reconcile_interval_s
        followers = self._configured()
        budget = followers[0].venue.budget if followers else None
        allowance = budget.allowance if budget is not None else 10**9
        base, per_symbol = self.kind.reconcile_weight
        weight = base + per_symbol * max(3, len(store.lead_positions()))
        self.reconcile_interval_s = paced_interval(configured, len(followers), weight, allowance)
        if starting:
            now, gap_s = self.clock.now_ms(), pass_spacing_s(weight, allowance)
            for i, mirror in enumerate(followers):
                self._first_reconcile[mirror.name] = now + int(i * gap_s * 1000)
        self.log.info(
            "reconcile_interval_effective",
            configured_s=configured,
            effective_s=round(self.reconcile_interval_s, 1),
            followers=len(followers),
            weight_per_pass=weight,
            allowance_per_minute=allowance,
        )

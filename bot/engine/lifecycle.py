"""Who copies, and with how much: admission under capacity, investment changes, episodes of the lead's state,
followers removed while the daemon was down, and every follower closed out when the lead is gone.

The decisions are the pure core's (`bot/core/risk.py`); this module applies them to the store and logs them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any

from bot.core.model import ENDED_STATES, ZERO, FollowerState, PlanKind
from bot.core.risk import Protection, admissions, capacity, lead_eligible, utilization
from bot.engine.clock import Clock
from bot.engine.mirror import FollowerMirror
from bot.engine.worker import close_until_flat
from bot.settings import FollowerSettings, ProtectionSettings
from bot.store.db import Store


def protection_of(settings: ProtectionSettings) -> Protection:
    return Protection(settings.enabled, settings.min_lead_equity, settings.collateral_ratio, settings.pause_utilization)


def follower_hash(follower: FollowerSettings, lead_name: str) -> str:
    """What "its configuration is changed" means for a stopped follower: any copy-relevant field, or the lead."""
    fields = follower.model_dump(exclude={"credentials", "api_key_env", "api_secret_env", "email"}, mode="json")
    return hashlib.sha256(json.dumps({"lead": lead_name, **fields}, sort_keys=True).encode()).hexdigest()[:16]


class Lifecycle:
    def __init__(self, store: Store, protection: Protection, clock: Clock, log: Any) -> None:
        self.store = store
        self.protection = protection
        self.clock = clock
        self.log = log
        self._ineligible: bool | None = None
        self._exceeded: bool | None = None
        self._waiting_logged: set[str] = set()

    def configure(
        self, followers: Sequence[FollowerSettings], mirrors: Mapping[str, FollowerMirror], lead_name: str
    ) -> None:
        """Applies a configuration (at start and on reload): new and reconfigured followers wait for admission,
        an investment decrease releases funds at once, an increase waits for capacity."""
        for follower in followers:
            digest = follower_hash(follower, lead_name)
            row = self.store.follower(follower.name)
            now = self.clock.now_ms()
            if row is None or row.state == FollowerState.PENDING_CAPACITY:
                self.store.register_waiting(follower.name, follower.investment, digest, now)
            elif row.state in ENDED_STATES:
                if row.config_hash != digest:
                    self.log.info("follower_reconfigured", follower=follower.name, previous_state=row.state)
                    self.store.register_waiting(follower.name, follower.investment, digest, now)
            elif row.state == FollowerState.CLOSING:
                continue  # its close-out finishes first; a changed configuration applies at the next reload
            elif row.state == FollowerState.ACTIVE:
                if follower.investment < row.investment:
                    self._decrease(mirrors[follower.name], row.investment, follower.investment)
                self.store.set_pending_increase(follower.name, max(ZERO, follower.investment - row.investment))
                self.store.set_config_hash(follower.name, digest)

    def _decrease(self, mirror: FollowerMirror, old: Decimal, new: Decimal) -> None:
        """Positions are reduced by the same fraction as the investment, to release its funds (journaled)."""
        seq = self.clock.now_ms()
        intents = mirror.plan_release(Fraction(old - new) / Fraction(old), seq)
        flow = self.store.change_investment(mirror.name, new, PlanKind.RELEASE, seq, intents, self.clock.now_ms())
        self.log.info(
            "follower_investment_changed",
            follower=mirror.name,
            investment=new,
            flow=flow,
            releasing_orders=len(intents),
        )

    async def review(self, order: Sequence[str], mirrors: Mapping[str, FollowerMirror]) -> list[str]:
        """After each lead poll: logs the lead's eligibility and capacity episodes, admits waiting followers
        (and investment increases) in config order. Returns the followers activated."""
        known = self.store.equity("lead")
        if known is None:
            return []
        lead_equity = known[0]
        rows = {r.name: r for r in self.store.followers()}
        aum = sum(
            (r.investment for r in rows.values() if r.state in (FollowerState.ACTIVE, FollowerState.CLOSING)), ZERO
        )
        self._episodes(lead_equity, aum)
        candidates: list[tuple[str, Decimal, str]] = []
        for name in order:
            row = rows.get(name)
            if row is not None and row.state == FollowerState.PENDING_CAPACITY:
                candidates.append((name, row.investment, "new"))
            elif row is not None and row.state == FollowerState.ACTIVE and row.pending_increase > 0:
                candidates.append((name, row.pending_increase, "increase"))
        admitted = set(admissions(lead_equity, aum, [(n, a) for n, a, _ in candidates], self.protection))
        aum += sum((a for n, a, _ in candidates if n in admitted), ZERO)  # what the waiting ones are measured on
        activated = []
        for name, amount, kind in candidates:
            if name not in admitted:
                if name not in self._waiting_logged:
                    self._waiting_logged.add(name)
                    self.log.info(
                        "follower_pending_capacity",
                        follower=name,
                        amount=amount,
                        kind=kind,
                        aum=aum,
                        lead_equity=lead_equity,
                        capacity=capacity(lead_equity, self.protection),
                        lead_eligible=lead_eligible(lead_equity, self.protection),
                    )
                continue
            self._waiting_logged.discard(name)
            if kind == "new" and name in mirrors and await mirrors[name].activate(rows[name].config_hash):
                activated.append(name)
            elif kind == "increase":
                self._increase(name, rows[name].investment, amount, rows[name].reserve)
        return activated

    def _increase(self, name: str, old: Decimal, amount: Decimal, reserve: Decimal) -> None:
        if amount > reserve:
            self.log.error(
                "follower_config_error",
                follower=name,
                reason="investment increase above the account's funds outside the copy",
                increase=amount,
                reserve=reserve,
            )
            self.store.set_pending_increase(name, ZERO)
            return
        flow = self.store.change_investment(
            name, old + amount, PlanKind.RELEASE, self.clock.now_ms(), [], self.clock.now_ms()
        )
        self.log.info(
            "follower_investment_changed", follower=name, investment=old + amount, flow=flow, releasing_orders=0
        )

    def _episodes(self, lead_equity: Decimal, aum: Decimal) -> None:
        """`lead_ineligible` and `capacity_exceeded` when they start and when they end, not on every poll."""
        if not self.protection.enabled:
            return
        ineligible = not lead_eligible(lead_equity, self.protection)
        if ineligible != bool(self._ineligible) and (ineligible or self._ineligible is not None):
            self.log.warning(
                "lead_ineligible",
                active=ineligible,
                lead_equity=lead_equity,
                min_lead_equity=self.protection.min_lead_equity,
            )
        self._ineligible = ineligible
        used = utilization(aum, lead_equity, self.protection)
        exceeded = (used is None and aum > 0) or (used is not None and used > 1)
        if exceeded != bool(self._exceeded) and (exceeded or self._exceeded is not None):
            self.log.warning(
                "capacity_exceeded",
                active=exceeded,
                aum=aum,
                lead_equity=lead_equity,
                capacity=capacity(lead_equity, self.protection),
                utilization=used,
            )
        self._exceeded = exceeded

    def forget_removed(self, managed: Collection[str]) -> None:
        """Followers in the state but gone from the file at start (not `managed`): without their keys they
        cannot be closed; their episode ends now, and its settlement is reported as unreachable."""
        for row in self.store.followers():
            if row.name not in managed and row.state in (
                FollowerState.ACTIVE,
                FollowerState.PENDING_CAPACITY,
                FollowerState.CLOSING,
            ):
                self.log.error(
                    "follower_removed_unmanaged",
                    follower=row.name,
                    reason="removed from the configuration while the daemon was down; its keys are "
                    "gone, so its positions were not closed by the bot",
                )
                self.store.end_unmanaged(row.name, "removed from the configuration", self.clock.now_ms())

    async def end_everything(
        self, mirrors: Mapping[str, FollowerMirror], reason: str, stopping: asyncio.Event, replaced_by: str | None
    ) -> None:
        """The lead is gone: every follower is closed out, retried until its account is flat (or the daemon is
        stopped: a restart resumes). After a replacement the next start begins from the new lead afresh."""
        store = self.store
        self.log.error("lead_gone", reason=reason, followers=sorted(mirrors))
        closing = []
        for mirror in mirrors.values():
            row = store.follower(mirror.name)
            if row is None or row.state in ENDED_STATES:
                continue
            if row.state == FollowerState.PENDING_CAPACITY:
                store.set_follower_state(mirror.name, FollowerState.ENDED, reason)
                continue
            if row.state == FollowerState.ACTIVE:
                mirror.closeout.begin(FollowerState.ENDED, reason)
            closing.append(mirror)
        await asyncio.gather(*(close_until_flat(m, stopping) for m in closing))
        still_closing = [r.name for r in store.followers() if r.state == FollowerState.CLOSING]
        if replaced_by is not None and not still_closing:
            store.reset_lead(replaced_by)
            self.log.info("lead_reset", lead=replaced_by, reason="a new lead starts from its own positions and equity")

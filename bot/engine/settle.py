"""Weekly settlement (SPEC section 7): boundary snapshots, the figures, transfers with deterministic ids,
reports. Exactly once per (cycle, follower): the settlement and its transfers are recorded before any
transfer is attempted, and a transfer is looked up by its id before it is sent again."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.core.cycles import Cycle, completed_cycles
from bot.core.ids import follower_tag
from bot.core.model import ZERO
from bot.core.settlement import CycleFigures, settle
from bot.engine.clock import Clock
from bot.reports.settlement import write_reports
from bot.settings import Settings
from bot.store.db import FollowerRow, Store
from bot.venue.ccxt_venue import AccountVenue
from bot.venue.errors import Fatal, Rejected, Temporary, UnknownOutcome

NOT_SETTLED = ("pending_capacity", "config_error")


class Settler:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        venues: Mapping[str, AccountVenue],
        clock: Clock,
        log: Any,
    ) -> None:
        self.settings = settings
        self.store = store
        self.venues = venues
        self.clock = clock
        self.log = log
        self.zone = ZoneInfo(settings.settlement.timezone)
        self.cycle_seconds = settings.settlement.cycle_seconds
        self.late_after_ms = max(2_000, int(3 * settings.bot.poll_interval_s * 1000))
        self.treasury = venues.get(settings.treasury.name) if settings.treasury else None
        self.emails = {a.name: a.email for a in settings.accounts()}

    @property
    def reports_dir(self) -> Path:
        return self.settings.bot.state_dir

    def due(self) -> list[Cycle]:
        """Completed cycles not yet settled, oldest first, from the first activation on."""
        starts = [r.activated_ms for r in self.store.followers() if r.state not in NOT_SETTLED]
        if not starts:
            return []
        since = datetime.fromtimestamp(min(starts) / 1000, UTC)
        now = datetime.fromtimestamp(self.clock.now_ms() / 1000, UTC)
        settled = self.store.settled_cycles()
        return [c for c in completed_cycles(since, now, self.zone, self.cycle_seconds) if c.id not in settled]

    async def run_due(self) -> list[str]:
        done = []
        for cycle in self.due():
            await self.settle_cycle(cycle)
            done.append(cycle.id)
        await self.send_transfers()
        return done

    def participants(self, cycle: Cycle) -> list[FollowerRow]:
        """Followers active at some moment of the cycle (stopped or ended in it included)."""
        out = []
        for row in self.store.followers():
            if row.state in NOT_SETTLED or row.activated_ms >= cycle.end_ms:
                continue
            if row.state in ("stopped_loss", "ended") and self.store.ended_ms(row.name) < cycle.start_ms:
                continue
            out.append(row)
        return out

    async def _snapshot(self, cycle: Cycle, rows: list[FollowerRow]) -> None:
        """E_end: the equity at the boundary, or the first snapshot after it (late) when the daemon was down."""
        late = self.clock.now_ms() - cycle.end_ms > self.late_after_ms
        lead_name = self.settings.lead.name if self.settings.lead else None
        if lead_name is not None and lead_name in self.venues and self.store.boundary(cycle.id, "lead") is None:
            equity = await self.venues[lead_name].equity()
            self.store.record_boundary(cycle.id, "lead", equity, equity, late, self.clock.now_ms())
        for row in rows:
            if self.store.boundary(cycle.id, row.name) is None and row.name in self.venues:
                equity = await self.venues[row.name].equity()
                current = self.store.follower(row.name) or row
                self.store.record_boundary(
                    cycle.id, row.name, equity, equity - current.reserve, late, self.clock.now_ms()
                )

    def _e_start(self, row: FollowerRow, cycle: Cycle) -> Decimal:
        """The previous cycle's E_end plus the transfers made for it; at activation, the activation copy equity."""
        previous = self.store.latest_settlement_before(row.name, cycle.start_ms)
        if previous is None or row.activated_ms >= cycle.start_ms:
            return self.store.activation_amount(row.name)
        moved = ZERO
        for transfer in self.store.transfers(previous["cycle"], "done"):
            if transfer["follower"] == row.name:
                moved += Decimal(transfer["amount"]) * (1 if transfer["kind"] == "compensation" else -1)
        return Decimal(previous["e_end"]) + moved

    async def _fees_and_funding(self, name: str, cycle: Cycle) -> tuple[Decimal, Decimal]:
        venue = self.venues[name]
        commission = await venue.income("COMMISSION", cycle.start_ms, cycle.end_ms)
        funding = await venue.income("FUNDING_FEE", cycle.start_ms, cycle.end_ms)
        return -sum((a for _, a in commission), ZERO), sum((a for _, a in funding), ZERO)

    async def settle_cycle(self, cycle: Cycle) -> None:
        rows = [r for r in self.participants(cycle) if r.name in self.venues]
        for row in self.participants(cycle):
            if row.name not in self.venues:
                self.log.error(
                    "settlement_follower_unreachable",
                    follower=row.name,
                    cycle=cycle.id,
                    reason="no credentials in the configuration; settle it by hand",
                )
        await self._snapshot(cycle, rows)
        protection = self.settings.protection
        lead = self.settings.lead.name if self.settings.lead else "lead"
        for row in rows:
            if self.store.settlement(cycle.id, row.name) is not None:
                continue
            boundary = self.store.boundary(cycle.id, row.name)
            assert boundary is not None
            fees, funding = await self._fees_and_funding(row.name, cycle)
            figures = CycleFigures(
                row.name,
                self._e_start(row, cycle),
                boundary[1],
                self.store.flows_between(row.name, cycle.start_ms, cycle.end_ms),
                fees,
                funding,
                late=boundary[2],
            )
            result = settle(figures, protection.profit_share, protection.fee_rebate)
            status = "pending" if self.treasury is not None else "due"
            base = f"st-{self.store.epoch}-{cycle.id.replace('-', '')}-{follower_tag(row.name)}"
            transfers = []
            if result.compensation > 0:
                transfers.append((f"{base}-c", "compensation", lead, row.name, result.compensation, status))
            if result.profit_share > 0:
                transfers.append((f"{base}-p", "profit_share", row.name, lead, result.profit_share, status))
            self.store.record_settlement(
                cycle.id,
                cycle.start_ms,
                cycle.end_ms,
                {
                    "follower": row.name,
                    "e_start": f"{figures.e_start:f}",
                    "e_end": f"{figures.e_end:f}",
                    "flows": f"{figures.flows:f}",
                    "fees": f"{figures.fees:f}",
                    "funding": f"{figures.funding:f}",
                    "pnl": f"{result.pnl:f}",
                    "compensation": f"{result.compensation:f}",
                    "profit_share": f"{result.profit_share:f}",
                    "fee_rebate": f"{result.fee_rebate:f}",
                    "late": "true" if figures.late else "false",
                },
                transfers,
                self.clock.now_ms(),
            )
        self.store.mark_cycle_settled(cycle.id, cycle.start_ms, cycle.end_ms, self.clock.now_ms())
        await self.send_transfers()
        directory = self.write(cycle)
        settled = self.store.settlements_of(cycle.id)
        self.log.info(
            "settlement_completed",
            cycle=cycle.id,
            followers=len(settled),
            late=any(s["late"] for s in settled),
            compensation=f"{sum((Decimal(s['compensation']) for s in settled), ZERO):f}",
            profit_share=f"{sum((Decimal(s['profit_share']) for s in settled), ZERO):f}",
            fee_rebate=f"{sum((Decimal(s['fee_rebate']) for s in settled), ZERO):f}",
            report=str(directory / "settlement.md"),
        )

    def write(self, cycle: Cycle) -> Path:
        return write_reports(
            self.store, self.reports_dir, cycle.id, cycle.start_ms, cycle.end_ms, self.settings.settlement.timezone
        )

    async def send_transfers(self) -> None:
        """Executes pending transfers through the treasury; a failure stays pending and is retried, and a
        transfer that may have happened is looked up by its id before it is sent again."""
        if self.treasury is None:
            return
        for transfer in self.store.transfers(status="pending"):
            tran_id = transfer["client_tran_id"]
            now = self.clock.now_ms()
            try:
                found = await self.treasury.find_transfer(tran_id) if transfer["attempts"] else None
                if found is None:
                    found = await self.treasury.universal_transfer(
                        tran_id,
                        self.emails[transfer["from_account"]],
                        self.emails[transfer["to_account"]],
                        Decimal(transfer["amount"]),
                    )
                self.store.update_transfer(tran_id, "done", found, None, now)
                self.log.info(
                    "transfer_completed",
                    transfer_id=tran_id,
                    kind=transfer["kind"],
                    follower=transfer["follower"],
                    amount=transfer["amount"],
                    tran_id=found,
                )
            except (Temporary, UnknownOutcome, Rejected, Fatal) as exc:
                self.store.update_transfer(tran_id, "pending", None, str(exc), now)
                self.log.error(
                    "transfer_failed",
                    transfer_id=tran_id,
                    kind=transfer["kind"],
                    follower=transfer["follower"],
                    amount=transfer["amount"],
                    error=str(exc),
                )

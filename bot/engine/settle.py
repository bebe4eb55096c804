"""Weekly settlement (SPEC section 7): boundary snapshots, the figures of every activation episode, transfers
with deterministic ids, reports. Exactly once per (cycle, follower, episode): the settlement and its transfers
are recorded before any transfer is attempted, an attempt is counted durably before it is sent, and a transfer
that may have been sent is looked up by its id before it is sent again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.core.cycles import Cycle, completed_cycles
from bot.core.ids import transfer_id
from bot.core.model import ZERO, TransferStatus
from bot.core.settlement import CycleFigures, settle
from bot.engine.clock import Clock
from bot.reports.settlement import write_reports
from bot.settings import Settings
from bot.store.db import Store
from bot.store.settlement import Boundary, Episode, SettlementRecord, Transfer
from bot.venue.ccxt_venue import AccountVenue
from bot.venue.errors import Rejected, VenueError

RETRY_FIRST_S = 1.0
RETRY_MAX_S = 600.0  # a failing transfer is tried again at most every 10 minutes


def retry_delay_s(attempts: int) -> float:
    """Exponential back-off between attempts of one transfer: 1 s, 2 s, 4 s ... capped at RETRY_MAX_S."""
    return float(min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** max(0, attempts - 1)))


class Settler:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        venues: Mapping[str, AccountVenue],
        clock: Clock,
        log: Any,
        equity_of: Callable[[AccountVenue, str], Awaitable[Decimal]] | None = None,
    ) -> None:
        # a follower's equity at a boundary (its copy equity is this less its reserve); spot values only the
        # copy holdings (SPEC 11: the reserve's assets are not copy PnL)
        self.equity_of = equity_of or (lambda venue, name: venue.equity())
        self.store = store
        self.book = store.settlement
        self.venues = venues
        self.clock = clock
        self.log = log
        self.configure(settings)

    def configure(self, settings: Settings) -> None:
        """Takes a (re)loaded configuration: shares, emails and the lead apply from the next settlement on."""
        self.settings = settings
        self.zone = ZoneInfo(settings.settlement.timezone)
        self.cycle_seconds = settings.settlement.cycle_seconds
        self.late_after_ms = max(2_000, int(3 * settings.bot.poll_interval_s * 1000))
        self.treasury = self.venues.get(settings.treasury.name) if settings.treasury else None
        for follower in settings.followers:
            if follower.email and self.store.follower(follower.name) is not None:
                self.store.set_email(follower.name, follower.email)

    @property
    def lead_name(self) -> str:
        return self.settings.lead.name if self.settings.lead else "lead"

    def _email(self, account: str) -> str:
        for configured in self.settings.accounts():
            if configured.name == account and configured.email:
                return configured.email
        return self.store.email(account)

    def due(self) -> list[Cycle]:
        """Completed cycles not yet settled, oldest first, from the first activation on."""
        first = self.book.first_activation_ms()
        if first is None:
            return []
        since = datetime.fromtimestamp(first / 1000, UTC)
        now = datetime.fromtimestamp(self.clock.now_ms() / 1000, UTC)
        settled = self.book.settled_cycles()
        return [c for c in completed_cycles(since, now, self.zone, self.cycle_seconds) if c.id not in settled]

    async def snapshot_due(self) -> None:
        """E_end of every due cycle, before anything else changes the accounts (at start: before the new
        configuration is applied and before any transfer is sent)."""
        for cycle in self.due():
            await self._snapshot(cycle)

    async def run_due(self) -> list[str]:
        cycles = self.due()
        for cycle in cycles:
            await self._snapshot(cycle)
        for cycle in cycles:
            await self.settle_cycle(cycle)
        await self.send_transfers()
        self.complete()
        return [c.id for c in cycles]

    async def _snapshot(self, cycle: Cycle) -> None:
        """The equity at the boundary, or the first snapshot after it (late) when the daemon was down; the copy
        equity uses the reserve in force at the boundary. Episodes that ended inside the cycle need none."""
        now = self.clock.now_ms()
        late = now - cycle.end_ms > self.late_after_ms
        lead = self.settings.lead.name if self.settings.lead else None
        if lead is not None and lead in self.venues and self.book.boundary(cycle.id, "lead") is None:
            equity = await self.venues[lead].equity()
            self.book.record_boundary(cycle.id, "lead", Boundary(equity, equity, self.clock.now_ms(), late))
        for episode in self.book.episodes_overlapping(cycle.start_ms, cycle.end_ms):
            name = episode.follower
            if self._ended_inside(episode, cycle) or name not in self.venues:
                continue
            if self.book.boundary(cycle.id, name) is None:
                equity = await self.equity_of(self.venues[name], name)
                reserve = self.book.reserve_at(name, cycle.end_ms)
                self.book.record_boundary(cycle.id, name, Boundary(equity, equity - reserve, self.clock.now_ms(), late))

    @staticmethod
    def _ended_inside(episode: Episode, cycle: Cycle) -> bool:
        return episode.ended_ms is not None and episode.ended_ms < cycle.end_ms

    def _e_start(self, episode: Episode, cycle: Cycle) -> Decimal:
        """The previous cycle's E_end plus every transfer recorded for it (done or not: see `owed`); for an
        episode that starts in this cycle, the copy equity at its activation."""
        previous = self.book.latest_before(episode.follower, episode.episode, cycle.start_ms)
        if previous is None:
            return episode.start_copy_equity
        moved = sum(
            (
                t.to_follower
                for t in self.book.transfers(previous.cycle)
                if t.follower == episode.follower and t.episode == episode.episode
            ),
            ZERO,
        )
        return previous.e_end + moved

    def _e_end(self, episode: Episode, cycle: Cycle) -> tuple[Decimal, bool] | None:
        """Copy equity at the episode's end inside the cycle, else at the boundary; plus what earlier
        settlements still owed it then. None when it cannot be known (no credentials)."""
        if self._ended_inside(episode, cycle):
            if episode.end_copy_equity is None or episode.ended_ms is None:
                return None
            owed = self.book.owed(episode.follower, episode.episode, cycle.start_ms, episode.ended_ms)
            return episode.end_copy_equity + owed, False
        boundary = self.book.boundary(cycle.id, episode.follower)
        if boundary is None:
            return None
        owed = self.book.owed(episode.follower, episode.episode, cycle.start_ms, boundary.taken_ms)
        return boundary.copy_equity + owed, boundary.late

    async def _fees_and_funding(self, episode: Episode, cycle: Cycle) -> tuple[Decimal, Decimal]:
        venue = self.venues[episode.follower]
        start = max(cycle.start_ms, episode.activated_ms)
        end = min(cycle.end_ms, episode.ended_ms + 1 if episode.ended_ms is not None else cycle.end_ms)
        traded = self.store.traded_symbols(episode.follower)  # spot reads trades by market: only these
        income = await venue.income(("COMMISSION", "FUNDING_FEE"), start, end, symbols=traded)
        return -sum((a for _, a in income["COMMISSION"]), ZERO), sum((a for _, a in income["FUNDING_FEE"]), ZERO)

    async def settle_cycle(self, cycle: Cycle) -> None:
        """Records the settlement of every episode active in the cycle, with its transfers, and the reports."""
        await self._snapshot(cycle)
        protection = self.settings.protection
        status = TransferStatus.PENDING if self.treasury is not None else TransferStatus.DUE
        for episode in self.book.episodes_overlapping(cycle.start_ms, cycle.end_ms):
            name = episode.follower
            if self.book.row(cycle.id, name, episode.episode) is not None:
                continue
            end = self._e_end(episode, cycle)
            if end is None or name not in self.venues:
                self.log.error(
                    "settlement_follower_unreachable",
                    follower=name,
                    cycle=cycle.id,
                    episode=episode.episode,
                    reason="no credentials in the configuration; settle it by hand",
                )
                continue
            fees, funding = await self._fees_and_funding(episode, cycle)
            figures = CycleFigures(
                name,
                self._e_start(episode, cycle),
                end[0],
                self.book.flows(name, episode.episode, cycle.start_ms, cycle.end_ms),
                fees,
                funding,
                late=end[1],
            )
            result = settle(figures, protection.profit_share, protection.fee_rebate)
            record = SettlementRecord(
                cycle.id,
                name,
                episode.episode,
                figures.e_start,
                figures.e_end,
                figures.flows,
                figures.fees,
                figures.funding,
                result.pnl,
                result.compensation,
                result.profit_share,
                result.fee_rebate,
                figures.late,
            )
            self.book.record(
                cycle.start_ms, cycle.end_ms, record, self._transfers(cycle, record, status), self.clock.now_ms()
            )
        self.book.mark_settled(cycle.id, cycle.start_ms, cycle.end_ms, self.clock.now_ms())
        rows = self.book.rows(cycle.id)
        directory = self.write(cycle.id)
        self.log.info(
            "settlement_recorded",
            cycle=cycle.id,
            followers=len(rows),
            late=any(r.late for r in rows),
            compensation=sum((r.compensation for r in rows), ZERO),
            profit_share=sum((r.profit_share for r in rows), ZERO),
            fee_rebate=sum((r.fee_rebate for r in rows), ZERO),
            report=str(directory / "settlement.md"),
        )

    def _transfers(self, cycle: Cycle, record: SettlementRecord, status: TransferStatus) -> list[Transfer]:
        follower = self.store.follower(record.follower)
        assert follower is not None
        out = []
        for kind, amount, source, target in (
            ("compensation", record.compensation, self.lead_name, record.follower),
            ("profit_share", record.profit_share, record.follower, self.lead_name),
        ):
            if amount > 0:
                tid = transfer_id(self.store.epoch, cycle.start_ms // 1000, follower.number, record.episode, kind[0])
                out.append(
                    Transfer(tid, cycle.id, record.follower, record.episode, kind, source, target, amount, status)
                )
        return out

    def write(self, cycle: str) -> Path:
        bounds = self.book.cycle_bounds(cycle)
        assert bounds is not None, f"cycle {cycle} is not recorded"
        return write_reports(self.store, self.settings.bot.state_dir, cycle, *bounds, self.settings.settlement.timezone)

    def complete(self) -> None:
        """`settlement_completed`, once per cycle, when none of its transfers is pending any more."""
        for cycle, _, _ in self.book.incomplete_cycles():
            transfers = self.book.transfers(cycle)
            if any(t.status == TransferStatus.PENDING for t in transfers):
                continue
            rows = self.book.rows(cycle)
            directory = self.write(cycle)
            self.log.info(
                "settlement_completed",
                cycle=cycle,
                followers=len(rows),
                late=any(r.late for r in rows),
                compensation=sum((r.compensation for r in rows), ZERO),
                profit_share=sum((r.profit_share for r in rows), ZERO),
                fee_rebate=sum((r.fee_rebate for r in rows), ZERO),
                transfers_done=sum(1 for t in transfers if t.status == TransferStatus.DONE),
                transfers_pending=0,
                transfers_failed=sum(1 for t in transfers if t.status == TransferStatus.FAILED),
                transfers_due=sum(1 for t in transfers if t.status == TransferStatus.DUE),
                report=str(directory / "settlement.md"),
            )
            self.book.mark_completed(cycle, self.clock.now_ms())

    async def send_transfers(self) -> None:
        """Executes pending transfers through the treasury. Each attempt is counted durably before it is sent
        and every attempt after the first looks the transfer up by its id before sending it again. A failure
        stays pending and is tried again with exponential back-off; a rejection that cannot succeed (an
        unknown sub-account, a missing email) is `failed` until `bot settle --retry`."""
        if self.treasury is None:
            return
        for transfer in self.book.transfers(status=TransferStatus.PENDING):
            if transfer.next_attempt_ms > self.clock.now_ms():
                continue
            await self._attempt(self.treasury, transfer)

    async def _attempt(self, treasury: AccountVenue, transfer: Transfer) -> None:
        tid = transfer.client_tran_id
        attempt = self.book.begin_attempt(tid, self.clock.now_ms())
        source, target = self._email(transfer.from_account), self._email(transfer.to_account)
        try:
            if not source or not target:
                missing = transfer.from_account if not source else transfer.to_account
                raise Rejected(f"no email known for {missing}: transfers go by the sub-account's email")
            found = await treasury.find_transfer(tid) if attempt.attempts > 1 else None
            if found is None:
                found = await treasury.universal_transfer(tid, source, target, transfer.amount)
        except VenueError as exc:
            permanent = isinstance(exc, Rejected) and not exc.retryable
            delay = retry_delay_s(attempt.attempts)
            status = TransferStatus.FAILED if permanent else TransferStatus.PENDING
            now = self.clock.now_ms()
            self.book.finish_attempt(tid, status, None, str(exc), now + int(delay * 1000), now)
            self._log_transfer(
                "transfer_failed", attempt, status=status, retry_in_s=None if permanent else delay, error=str(exc)
            )
            if permanent:
                self.write(transfer.cycle)
            return
        self.book.finish_attempt(tid, TransferStatus.DONE, found, None, 0, self.clock.now_ms())
        self._log_transfer("transfer_completed", attempt, tran_id=found)
        self.write(transfer.cycle)

    def _log_transfer(self, event: str, transfer: Transfer, **extra: Any) -> None:
        level = self.log.error if event == "transfer_failed" else self.log.info
        level(
            event,
            transfer_id=transfer.client_tran_id,
            kind=transfer.kind,
            follower=transfer.follower,
            amount=transfer.amount,
            attempt=transfer.attempts,
            **extra,
        )

"""Risk and capital protection (SPEC section 6): stop loss, lead eligibility, capacity. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from bot.core.model import ZERO


@dataclass(frozen=True, slots=True)
class Protection:
    enabled: bool
    min_lead_equity: Decimal
    collateral_ratio: Decimal
    pause_utilization: Decimal


def stop_loss_threshold(investment: Decimal, pct: Decimal) -> Decimal:
    """The copy equity at or below which the total stop loss triggers: investment × (1 − pct/100)."""
    return investment * (1 - pct / 100)


def stop_loss_hit(copy_equity: Decimal, investment: Decimal, pct: Decimal) -> bool:
    return copy_equity <= stop_loss_threshold(investment, pct)


@dataclass(slots=True)
class FillSums:
    """A follower's fills in one symbol since its last account read, summed for the estimate (SPEC 12): their
    signed quantity, Σ quantity × price, and Σ |quantity| × price (the notional fees are charged on). The
    estimate is linear in the fills, so these are all it needs, however many fills came since."""

    qty: Decimal = ZERO
    cost: Decimal = ZERO
    notional: Decimal = ZERO

    def add(self, qty: Decimal, price: Decimal) -> None:
        self.qty += qty
        self.cost += qty * price
        self.notional += abs(qty) * price


def fill_sums(fills: Iterable[tuple[str, Decimal, Decimal]]) -> dict[str, FillSums]:
    """(symbol, signed quantity, price) fills summed per symbol."""
    sums: dict[str, FillSums] = {}
    for symbol, qty, price in fills:
        sums.setdefault(symbol, FillSums()).add(qty, price)
    return sums


def estimated_copy_equity(
    base: Decimal,
    base_positions: Mapping[str, Decimal],
    base_marks: Mapping[str, Decimal],
    fills_since: Mapping[str, FillSums],
    marks: Mapping[str, Decimal],
    fee_rate: Decimal,
    fundings: Sequence[tuple[Decimal, Decimal, Decimal]] = (),
) -> Decimal:
    """A follower's copy equity now, from the one read at `base` and what changed since, with no request (SPEC
    12): the positions held then move with their marks, and each fill since (summed per symbol: `FillSums`)
    adds `quantity × (mark − price)` less its fee, whether it opened or closed (realized PnL and fee go to the
    wallet, the rest is unrealized: at the same mark, equity moves by exactly that), and each funding since
    (signed quantity held then, mark, rate) pays `−quantity × mark × rate` (longs pay a positive rate). A
    symbol without a mark now (or then) has not moved."""
    moved = ZERO
    for symbol, qty in base_positions.items():
        then = base_marks.get(symbol, marks.get(symbol))
        if then is not None:
            moved += qty * (marks.get(symbol, then) - then)
    for symbol, sums in fills_since.items():
        mark = marks.get(symbol)
        if mark is not None:  # Σ q × (mark − p) = mark × Σ q − Σ q × p; without a mark a fill has not moved
            moved += sums.qty * mark - sums.cost
        moved -= sums.notional * fee_rate
    for held, mark, rate in fundings:
        moved -= held * mark * rate
    return base + moved


def lead_eligible(lead_equity: Decimal, protection: Protection) -> bool:
    return not protection.enabled or lead_equity >= protection.min_lead_equity


def capacity(lead_equity: Decimal, protection: Protection) -> Decimal:
    """The copied funds the lead's own funds can cover: E_L / collateral_ratio."""
    return max(ZERO, lead_equity) / protection.collateral_ratio


def utilization(aum: Decimal, lead_equity: Decimal, protection: Protection) -> Decimal | None:
    cap = capacity(lead_equity, protection)
    return aum / cap if cap > 0 else None


def admissions(
    lead_equity: Decimal, aum: Decimal, candidates: Sequence[tuple[str, Decimal]], protection: Protection
) -> tuple[str, ...]:
    """Which waiting followers (or investment increases), in config order, may be activated now.

    Each is admitted only while AUM after it stays within pause_utilization × capacity. Order is kept: a
    candidate that does not fit holds back the ones after it, so nobody jumps the queue.
    """
    if not protection.enabled:
        return tuple(name for name, _ in candidates)
    if not lead_eligible(lead_equity, protection):
        return ()
    limit = protection.pause_utilization * capacity(lead_equity, protection)
    admitted = []
    for name, amount in candidates:
        if aum + amount > limit:
            break
        aum += amount
        admitted.append(name)
    return tuple(admitted)

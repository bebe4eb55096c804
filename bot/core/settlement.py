"""One cycle's settlement figures (SPEC section 7): pure, Decimal, rounded in the follower's favour."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

from bot.core.model import ZERO

CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class CycleFigures:
    follower: str
    e_start: Decimal
    e_end: Decimal
    flows: Decimal  # investment changes in the cycle, + for top-ups
    fees: Decimal  # commission paid in the cycle (a positive amount)
    funding: Decimal  # funding received (+) or paid (−) in the cycle
    late: bool = False


@dataclass(frozen=True, slots=True)
class SettlementRow:
    figures: CycleFigures
    pnl: Decimal
    compensation: Decimal  # lead → follower
    profit_share: Decimal  # follower → lead
    fee_rebate: Decimal  # owed to the lead by the operator


def settle(figures: CycleFigures, profit_share_rate: Decimal, fee_rebate_rate: Decimal) -> SettlementRow:
    """pnl = E_end − E_start − flows (fees and funding are inside it); a loss is compensated by the lead,
    rounded up to the cent; a profit is shared with the lead, rounded down to the cent."""
    pnl = figures.e_end - figures.e_start - figures.flows
    compensation = (-pnl).quantize(CENT, ROUND_CEILING) if pnl < 0 else ZERO
    share = (pnl * profit_share_rate).quantize(CENT, ROUND_FLOOR) if pnl > 0 else ZERO
    rebate = (figures.fees * fee_rebate_rate).quantize(CENT, ROUND_HALF_EVEN)
    return SettlementRow(figures, pnl, compensation, share, rebate)


@dataclass(frozen=True, slots=True)
class Totals:
    pnl: Decimal
    compensation: Decimal
    profit_share: Decimal
    fee_rebate: Decimal
    fees: Decimal
    funding: Decimal


def totals(rows: Sequence[SettlementRow]) -> Totals:
    return Totals(
        pnl=sum((r.pnl for r in rows), ZERO),
        compensation=sum((r.compensation for r in rows), ZERO),
        profit_share=sum((r.profit_share for r in rows), ZERO),
        fee_rebate=sum((r.fee_rebate for r in rows), ZERO),
        fees=sum((r.figures.fees for r in rows), ZERO),
        funding=sum((r.figures.funding for r in rows), ZERO),
    )


def lead_collateral_after(before: Decimal, compensation: Decimal, profit_share: Decimal) -> Decimal:
    """The lead's equity once compensations are paid out and profit shares paid in."""
    return before - compensation + profit_share

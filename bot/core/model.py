"""The core's vocabulary: markets, lead changes, follower views, intents. Frozen values over Decimal."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Market:
    """What sizing needs of a market: its amount step and minimums (base quantities, USDT notional)."""

    symbol: str
    step: Decimal
    min_qty: Decimal
    min_notional: Decimal

    def truncate(self, qty: Decimal | Fraction) -> Decimal:
        """Toward zero onto the step, as ccxt's amount_to_precision (TRUNCATE) does.

        Exact for fractions: sizes are ratios (r = E_f / E_L, φ = 1 − |L_now| / |L_prev|), and a ratio
        rounded to 28 digits can land a hair under a step it truly reaches (0.3 · (1 − 2/3) must be 0.1).
        """
        steps = math.floor(abs(Fraction(qty)) / Fraction(self.step))
        result = Decimal(steps) * self.step
        return result if qty >= 0 else -result

    def tradable(self, qty: Decimal, price: Decimal) -> bool:
        """Whether an order of `qty` (already on the step) at `price` passes the market's minimums."""
        return qty > 0 and qty >= self.min_qty and qty * price >= self.min_notional


def decimal_of(value: Fraction) -> Decimal:
    """A fraction for logs: 12 significant digits are plenty to read, the math never uses it."""
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal("1e-12")).normalize()


@dataclass(frozen=True, slots=True)
class EquityBase:
    """A REST read of a follower's account, and what its copy equity is estimated from until the next (SPEC 12)."""

    account_equity: Decimal  # the account's, not the copy's: an investment change moves the reserve meanwhile
    positions: dict[str, Decimal]  # the follower's copy positions at the read
    marks: dict[str, Decimal]  # the marks they were valued at
    last_fill: int  # the journal position of the last fill the read includes
    read_ms: int


def sign(value: Decimal | Fraction) -> int:
    return (value > 0) - (value < 0)


class FollowerState(StrEnum):
    """A follower's state, as the store keeps it (SPEC 6, 9)."""

    PENDING_CAPACITY = "pending_capacity"  # waiting for the lead's capacity (or for a new configuration)
    ACTIVE = "active"  # copying
    CLOSING = "closing"  # closing out until flat; then the state it was closing to
    STOPPED_LOSS = "stopped_loss"  # its total stop loss hit
    ENDED = "ended"  # removed, or the lead gone
    CONFIG_ERROR = "config_error"  # its configuration cannot run (an investment above its equity)


# states a follower leaves only when its configuration changes (then it starts afresh)
ENDED_STATES = (FollowerState.STOPPED_LOSS, FollowerState.ENDED, FollowerState.CONFIG_ERROR)


class IntentStatus(StrEnum):
    """Where an intent (one order of a plan) is, as the store keeps it (SPEC 4)."""

    PENDING = "pending"  # journaled; may have been sent (a crash): looked up first unless this process planned it
    UNKNOWN = "unknown"  # sent, no answer: looked up by client order id before it is ever sent again
    WORKING = "working"  # the exchange holds it open (NEW, PARTIALLY_FILLED): looked at again until final
    FILLED = "filled"
    PARTIAL = "partial"  # final with part of its quantity
    EXPIRED = "expired"  # final with nothing filled
    REJECTED = "rejected"
    ABANDONED = "abandoned"  # left by a close-out: never sent again


OPEN_STATUSES = (IntentStatus.PENDING, IntentStatus.UNKNOWN, IntentStatus.WORKING)  # not final yet


class TransferStatus(StrEnum):
    """Where a settlement transfer is, as the store keeps it (SPEC 7)."""

    DUE = "due"  # owed, with no treasury configured to send it: reported for the operator to pay
    PENDING = "pending"  # to be sent (again) once its back-off allows; looked up by its id before a resend
    DONE = "done"
    FAILED = "failed"  # refused for good: sent again only after `bot settle --retry`


class PlanKind(StrEnum):
    """What a plan is for: one letter, part of every client order id (`ids.py`). A plan is numbered within its
    kind (per follower), and what the number counts depends on the kind: `number_field` names it."""

    COPY = "c"  # a lead change (number: the lead change's)
    BOOTSTRAP = "b"  # copy_existing at an activation (number: the activation episode)
    RECONCILE = "r"  # reconciliation's corrections (number: from the clock, ms)
    RELEASE = "i"  # an investment decrease (number: from the clock, ms)
    STOP = "s"  # closing after the total stop loss (number: from the clock, ms)
    END = "x"  # closing on removal or when the lead is gone (number: from the clock, ms)

    @property
    def number_field(self) -> str:
        """What a plan's number is, as logs name it: `lead_change` (the change it copies), `episode` (the
        activation it bootstraps) or `plan_clock_ms` (a number taken from the clock, unique per follower)."""
        if self is PlanKind.COPY:
            return "lead_change"
        return "episode" if self is PlanKind.BOOTSTRAP else "plan_clock_ms"

    def fields(self, number: int) -> dict[str, object]:
        """A plan's kind and number for a log line, the number under the name of what it counts."""
        return {"kind": self.value, self.number_field: number}


@dataclass(frozen=True, slots=True)
class PlanRecord:
    """One follower's plan as it is journaled before anything is sent: its intents, each with its client order
    id, and its skips."""

    follower: str
    kind: PlanKind
    number: int  # within its kind: what it counts is `kind.number_field` (stored as `seq`)
    intents: list[tuple[Intent, str]]
    skips: tuple[Skip, ...]
    planned_ms: int


class Leg(StrEnum):
    OPEN = "open"
    REDUCE = "reduce"
    CLOSE = "close"


@dataclass(frozen=True, slots=True)
class LeadChange:
    """One observed change of the lead's signed position in a symbol (`L_prev → L_now`)."""

    seq: int
    symbol: str
    prev: Decimal
    now: Decimal
    fill_price: Decimal | None  # the lead's fill price of the opening part, when known

    @property
    def kind(self) -> str:
        if self.now == 0:
            return "close"
        if self.prev == 0 or sign(self.prev) == sign(self.now):
            return "increase" if abs(self.now) > abs(self.prev) else "reduce"
        return "flip"


def lead_fill_price(prev: Decimal, entry_prev: Decimal, now: Decimal, entry_now: Decimal) -> Decimal | None:
    """The lead's fill price from its average entry prices (SPEC 3): exact for opens and increases.

    For a flip the new position's entry is the fill price; reduces and closes leave no trace in it.
    """
    if now == 0:
        return None
    if prev == 0 or sign(prev) != sign(now):
        return entry_now if entry_now > 0 else None
    if abs(now) <= abs(prev):
        return None
    return (entry_now * abs(now) - entry_prev * abs(prev)) / (abs(now) - abs(prev))


@dataclass(frozen=True, slots=True)
class FollowerView:
    """What the core needs to know of one follower to size its copy of a lead change."""

    name: str
    copy_equity: Decimal
    positions: dict[str, Decimal]  # the follower's expected signed positions (its own fills add up to them)
    max_leverage: Decimal
    max_slippage_pct: Decimal

    def position(self, symbol: str) -> Decimal:
        return self.positions.get(symbol, ZERO)


@dataclass(frozen=True, slots=True)
class Intent:
    """An order the bot means to place: recorded before it is sent."""

    leg: Leg
    symbol: str
    side: str  # "buy" / "sell"
    qty: Decimal
    reduce_only: bool

    @property
    def signed_qty(self) -> Decimal:
        return self.qty if self.side == "buy" else -self.qty


@dataclass(frozen=True, slots=True)
class Skip:
    """A copy the rules decided against, with the event name it is logged under."""

    event: str  # sync_skipped_below_minimum, sync_skipped_slippage, sync_skipped_no_headroom
    symbol: str
    detail: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Plan:
    intents: tuple[Intent, ...] = ()
    skips: tuple[Skip, ...] = ()
    clipped: tuple[dict[str, str], ...] = ()  # the clips' details, logged under `clip_event`
    clip_event: str = "sync_clipped_by_leverage"  # spot: sync_clipped_by_cash

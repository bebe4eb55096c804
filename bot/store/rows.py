"""The rows the store answers with, and how they are read from their tables."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bot.core.model import (
    FollowerState,
    Intent,
    IntentStatus,
    LeadChange,
    PlanKind,
)
from bot.core.risk import FillSums, fill_sums

INTENT_SELECT = (
    "SELECT id, follower, kind, seq, idx, leg, symbol, side, qty, reduce_only, client_order_id, status,"
    " order_id, filled, avg_price, error FROM intents WHERE "
)


@dataclass(frozen=True, slots=True)
class StoredChange:
    change: LeadChange
    lead_equity: Decimal
    detected_ms: int


@dataclass(frozen=True, slots=True)
class FollowerRow:
    name: str
    state: FollowerState
    investment: Decimal
    reserve: Decimal
    start_equity: Decimal
    last_seq: int
    activated_ms: int
    bootstrapped: bool
    state_reason: str
    config_hash: str
    pending_increase: Decimal
    number: int  # this follower's number in this state: in every client order and transfer id
    episode: int  # activations so far: each one is settled on its own (SPEC 7)
    closing_to: FollowerState | None  # while `closing`: the state it ends in once its account is flat


@dataclass(frozen=True, slots=True)
class IntentRow:
    id: int
    follower: str
    kind: PlanKind
    number: int  # its plan's number within the kind: what it counts is `kind.number_field` (stored as `seq`)
    idx: int
    intent: Intent
    client_order_id: str
    status: IntentStatus
    order_id: str | None
    filled: Decimal
    avg_price: Decimal | None
    error: str | None


FOLLOWER_SELECT = (
    "SELECT name, state, investment, reserve, start_equity, last_seq, activated_ms, bootstrapped, state_reason,"
    " config_hash, pending_increase, number, episode, closing_to FROM followers"
)


def follower_row(r: tuple[Any, ...]) -> FollowerRow:
    return FollowerRow(
        r[0], FollowerState(r[1]), Decimal(r[2]), Decimal(r[3]), Decimal(r[4]), r[5], r[6], bool(r[7]), r[8], r[9],
        Decimal(r[10]), r[11], r[12], FollowerState(r[13]) if r[13] else None,
    )  # fmt: skip


def decimal_or_none(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


class KeptFills:
    """A follower's fills journaled after `floor` (its last account read's), kept in order and summed per
    symbol as they come: the estimate on every lead change reads the sums, not the fills."""

    __slots__ = ("fills", "floor", "sums")

    def __init__(self, floor: int, fills: list[tuple[int, str, Decimal, Decimal, int]]) -> None:
        self.floor = floor
        self.fills = fills  # (journal position, symbol, signed quantity, price, recorded ms)
        self.sums = fill_sums((s, q, p) for _, s, q, p, _ in fills)

    def append(self, fill_id: int, symbol: str, qty: Decimal, price: Decimal, recorded_ms: int) -> None:
        self.fills.append((fill_id, symbol, qty, price, recorded_ms))
        self.sums.setdefault(symbol, FillSums()).add(qty, price)

    def after(self, floor: int) -> KeptFills:
        """Those journaled after a later `floor` (a new account read)."""
        return KeptFills(floor, [f for f in self.fills if f[0] > floor])

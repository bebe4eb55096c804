"""Deterministic ids, unique by construction: the same intent (or transfer) always gets the same id, and
two different ones never share it (SPEC sections 4 and 7)."""

from __future__ import annotations

import hashlib
import re

CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def base36(value: int) -> str:
    if value < 0:
        raise ValueError(f"ids take non-negative numbers, got {value}")
    out = ""
    while True:
        value, digit = divmod(value, 36)
        out = _DIGITS[digit] + out
        if value == 0:
            return out


def _checked(value: str) -> str:
    if not CLIENT_ID.match(value):
        raise ValueError(f"id {value!r} breaks the exchange's rules (at most 32 of A-Z a-z 0-9 - _)")
    return value


def client_order_id(epoch: str, follower: int, kind: str, seq: int, index: int) -> str:
    """`cb-<epoch>-<follower>-<kind><seq>-<index>`, numbers in base 36: `epoch` is the state's random id,
    `follower` the follower's number in this state (never reused), `kind` one letter (the plan kind,
    `core.model.PlanKind`), `seq` the plan's number within its kind, `index` the intent's place in its plan.
    Every part is fixed-alphabet and the kind is exactly one letter, so the id is injective."""
    if len(kind) != 1 or not kind.isalpha():
        raise ValueError(f"a plan kind is one letter, got {kind!r}")
    return _checked(f"cb-{epoch}-{base36(follower)}-{kind}{base36(seq)}-{base36(index)}")


def transfer_id(epoch: str, cycle_start_s: int, follower: int, episode: int, kind: str) -> str:
    """`st-<epoch>-<cycle start>-<follower>-<episode><kind>`: one id per settlement transfer, with `kind`
    `c` (compensation) or `p` (profit share) last."""
    if kind not in ("c", "p"):
        raise ValueError(f"a transfer kind is c or p, got {kind!r}")
    return _checked(f"st-{epoch}-{base36(cycle_start_s)}-{base36(follower)}-{base36(episode)}{kind}")


def phase(name: str) -> float:
    """A stable number in [0, 1) per follower name, to spread periodic work over time (never an id)."""
    return int(hashlib.sha256(name.encode()).hexdigest()[:4], 16) / 0x10000

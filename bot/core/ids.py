"""Deterministic client order ids: the same intent always gets the same id (SPEC section 4)."""

from __future__ import annotations

import hashlib
import re

CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def follower_tag(name: str) -> str:
    """Four hex characters that tell followers apart inside an id (two followers never share an account)."""
    return hashlib.sha256(name.encode()).hexdigest()[:4]


def client_order_id(epoch: str, follower: str, kind: str, seq: int, index: int) -> str:
    """`cb-<epoch>-<tag>-<kind><seq>-<index>`: epoch is the state's random id, kind `c` (lead change),
    `b` (copy of existing positions) or `r` (reconciliation), index the intent's place in its plan."""
    cid = f"cb-{epoch}-{follower_tag(follower)}-{kind}{seq}-{index}"
    if not CLIENT_ID.match(cid):
        raise ValueError(f"client order id {cid!r} breaks the exchange's rules")
    return cid

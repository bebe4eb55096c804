from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.ids import CLIENT_ID, client_order_id


@given(st.text(min_size=1, max_size=40), st.sampled_from("cbr"), st.integers(0, 10**12), st.integers(0, 9))
def test_ids_are_deterministic_short_and_legal(name: str, kind: str, seq: int, index: int) -> None:
    first = client_order_id("a1b2c3", name, kind, seq, index)
    assert first == client_order_id("a1b2c3", name, kind, seq, index)
    assert CLIENT_ID.match(first) and len(first) <= 32


def test_ids_differ_by_every_part() -> None:
    ids = {
        client_order_id("a1b2c3", "alice", "c", 7, 0),
        client_order_id("a1b2c3", "alice", "c", 7, 1),
        client_order_id("a1b2c3", "alice", "c", 8, 0),
        client_order_id("a1b2c3", "bob", "c", 7, 0),
        client_order_id("ffffff", "alice", "c", 7, 0),
        client_order_id("a1b2c3", "alice", "b", 7, 0),
    }
    assert len(ids) == 6


def test_an_id_that_would_break_the_rules_is_refused() -> None:
    with pytest.raises(ValueError, match="breaks"):
        client_order_id("a b", "alice", "c", 1, 0)

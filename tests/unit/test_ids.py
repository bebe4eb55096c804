from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.ids import CLIENT_ID, client_order_id, transfer_id
from bot.store.db import Store

KINDS = "cbrisx"


@given(st.integers(1, 46_655), st.sampled_from(KINDS), st.integers(0, 10**13), st.integers(0, 999))
def test_ids_are_deterministic_short_and_legal(number: int, kind: str, seq: int, index: int) -> None:
    first = client_order_id("a1b2c3", number, kind, seq, index)
    assert first == client_order_id("a1b2c3", number, kind, seq, index)
    assert CLIENT_ID.match(first) and len(first) <= 32


@given(
    st.tuples(st.integers(1, 5000), st.sampled_from(KINDS), st.integers(0, 10**13), st.integers(0, 50)),
    st.tuples(st.integers(1, 5000), st.sampled_from(KINDS), st.integers(0, 10**13), st.integers(0, 50)),
)
def test_two_different_intents_never_share_a_client_order_id(
    a: tuple[int, str, int, int], b: tuple[int, str, int, int]
) -> None:
    assert (client_order_id("a1b2c3", *a) == client_order_id("a1b2c3", *b)) == (a == b)


@given(
    st.tuples(st.integers(0, 4 * 10**9), st.integers(1, 5000), st.integers(1, 999), st.sampled_from("cp")),
    st.tuples(st.integers(0, 4 * 10**9), st.integers(1, 5000), st.integers(1, 999), st.sampled_from("cp")),
)
def test_transfer_ids_are_legal_and_never_shared(a: tuple[int, int, int, str], b: tuple[int, int, int, str]) -> None:
    first = transfer_id("a1b2c3", *a)
    assert CLIENT_ID.match(first) and len(first) <= 32
    assert (first == transfer_id("a1b2c3", *b)) == (a == b)


def test_thousands_of_follower_names_get_distinct_numbers_and_ids(tmp_path: Path) -> None:
    # follower-28 and follower-368 once shared a hashed 4-hex tag: numbers given out by the state cannot collide
    rng = random.Random(7)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
    names = [f"follower-{i}" for i in range(5000)]
    names += ["".join(rng.choices(alphabet, k=rng.randint(1, 40))) for _ in range(3000)]
    names = list(dict.fromkeys(names))
    store = Store(tmp_path / "state.sqlite3")
    try:
        for name in names:
            store.register_waiting(name, Decimal(100), "", 0)
        numbers = [row.number for row in store.followers()]
        assert len(set(numbers)) == len(names) and min(numbers) >= 1
        orders = {client_order_id(store.epoch, n, "x", 1_764_547_200_123, 12) for n in numbers}
        transfers = {transfer_id(store.epoch, 1_764_547_200, n, 3, "p") for n in numbers}
        assert len(orders) == len(transfers) == len(names)
        assert all(len(i) <= 32 for i in orders | transfers)
    finally:
        store.close()


def test_a_number_is_never_reused_after_a_follower_is_gone(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.sqlite3")
    try:
        store.register_waiting("a", Decimal(1), "", 0)
        store.register_waiting("b", Decimal(1), "", 0)
        store.register_waiting("a", Decimal(2), "x", 1)  # re-registered: keeps its number
        assert {r.name: r.number for r in store.followers()} == {"a": 1, "b": 2}
    finally:
        store.close()


def test_an_id_that_would_break_the_rules_is_refused() -> None:
    with pytest.raises(ValueError, match="breaks"):
        client_order_id("a b", 1, "c", 1, 0)
    with pytest.raises(ValueError, match="one letter"):
        client_order_id("a1b2c3", 1, "cc", 1, 0)

"""A fan-out's chunks: every follower once, in order, the first chunk small and each next one twice as big, so
that a fan-out of N followers makes about log2(N/8) fsyncs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.engine.fanout import chunks


@given(n=st.integers(min_value=0, max_value=3000), first=st.integers(min_value=1, max_value=64))
def test_chunks_cover_every_follower_once_in_order_doubling(n: int, first: int) -> None:
    items = list(range(n))
    parts = [list(c) for c in chunks(items, first)]
    assert [x for part in parts for x in part] == items
    assert all(len(part) == first * 2**i for i, part in enumerate(parts[:-1]))
    assert len(parts) == (0 if n == 0 else next(k for k in range(1, 40) if first * (2**k - 1) >= n))


def test_a_hundred_followers_take_three_commits_and_five_hundred_six() -> None:
    assert [len(c) for c in chunks(list(range(100)))] == [16, 32, 52]
    assert len(list(chunks(list(range(500))))) == 6

"""SPEC section 6: example E, example F's stop loss, eligibility, and properties of admission."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from bot.core.risk import (
    Protection,
    admissions,
    capacity,
    estimated_copy_equity,
    fill_sums,
    lead_eligible,
    stop_loss_hit,
    stop_loss_threshold,
    utilization,
)

D = Decimal
ON = Protection(True, D(10000), D("0.20"), D("0.95"))
OFF = Protection(False, D(10000), D("0.20"), D("0.95"))


def test_example_f_stop_loss_at_exactly_the_threshold() -> None:
    assert stop_loss_threshold(D(1000), D(30)) == D(700)
    assert stop_loss_hit(D("700.00"), D(1000), D(30))
    assert not stop_loss_hit(D("700.01"), D(1000), D(30))  # not one cent early


def test_example_e_capacity_and_admission() -> None:
    assert capacity(D(12000), ON) == D(60000)
    queue = [("a", D(30000)), ("b", D(20000)), ("c", D(7000)), ("d", D(1)), ("e", D(1))]
    assert admissions(D(12000), D(0), queue, ON) == ("a", "b", "c")  # 57,000 fits, 57,001 does not
    assert admissions(D(12000), D(57000), [("d", D(1))], ON) == ()
    assert utilization(D(57000), D(12000), ON) == D("0.95")


def test_lead_below_minimum_activates_no_one() -> None:
    assert not lead_eligible(D("9999.99"), ON)
    assert admissions(D("9999.99"), D(0), [("a", D(1))], ON) == ()
    assert admissions(D("9999.99"), D(0), [("a", D(1))], OFF) == ("a",)


def test_a_waiting_follower_holds_back_the_ones_after_it() -> None:
    assert admissions(D(12000), D(0), [("big", D(58000)), ("small", D(10))], ON) == ()


@given(
    st.decimals(min_value=0, max_value=10**7, places=2),
    st.lists(st.decimals(min_value=1, max_value=10**6, places=2), max_size=8),
)
def test_admitted_aum_never_passes_the_pause_level(lead_equity: Decimal, amounts: list[Decimal]) -> None:
    queue = [(str(i), a) for i, a in enumerate(amounts)]
    admitted = admissions(lead_equity, D(0), queue, ON)
    total = sum((a for n, a in queue if n in admitted), D(0))
    assert total <= D("0.95") * capacity(lead_equity, ON)
    assert list(admitted) == [n for n, _ in queue[: len(admitted)]]  # a prefix: config order


_fills = st.lists(
    st.tuples(
        st.sampled_from(["ETHUSDT", "BTCUSDT", "SOLUSDT"]),
        st.decimals(min_value=-50, max_value=50, places=3).filter(lambda q: q != 0),
        st.decimals(min_value=1, max_value=100_000, places=2),
    ),
    max_size=40,
)


@given(
    fills=_fills,
    marks=st.dictionaries(
        st.sampled_from(["ETHUSDT", "BTCUSDT", "SOLUSDT"]), st.decimals(min_value=1, max_value=100_000, places=2)
    ),
    fee=st.decimals(min_value=0, max_value="0.001", places=5),
)
def test_the_estimate_on_fills_summed_per_symbol_is_the_estimate_fill_by_fill(
    fills: list[tuple[str, Decimal, Decimal]], marks: dict[str, Decimal], fee: Decimal
) -> None:
    """SPEC 12, fill by fill: each fill adds q × (mark − price) (nothing without a mark) less |q| × price × fee.
    Summed per symbol (what the store keeps as fills come) it is the same figure, to far below a cent."""
    by_fill = sum(
        (q * (marks.get(s, p) - p) - abs(q) * p * fee for s, q, p in fills),
        Decimal(0),
    )
    summed = estimated_copy_equity(Decimal(1000), {}, {}, fill_sums(fills), marks, fee) - 1000
    assert abs(summed - by_fill) < Decimal("1e-12")

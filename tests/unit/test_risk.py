"""SPEC section 6: example E, example F's stop loss, eligibility, and properties of admission."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from bot.core.risk import (
    Protection,
    admissions,
    capacity,
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

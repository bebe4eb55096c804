"""SPEC section 7: example D, rounding in the follower's favour, natural weeks across DST and year ends."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from bot.core.cycles import completed_cycles, cycle_of, parse_cycle_id, week_of
from bot.core.settlement import CycleFigures, lead_collateral_after, settle, totals

D = Decimal


def test_example_d() -> None:
    p = settle(CycleFigures("P", D("1000.00"), D("940.00"), D(0), D("3.20"), D(0)), D("0.70"), D("0.70"))
    assert (p.pnl, p.compensation, p.profit_share, p.fee_rebate) == (D("-60.00"), D("60.00"), D(0), D("2.24"))
    q = settle(CycleFigures("Q", D("2000.00"), D("2150.00"), D(0), D("4.00"), D(0)), D("0.70"), D("0.70"))
    assert (q.pnl, q.compensation, q.profit_share, q.fee_rebate) == (D("150.00"), D(0), D("105.00"), D("2.80"))
    t = totals([p, q])
    assert lead_collateral_after(D(12000), t.compensation, t.profit_share) == D("12045.00")


def test_rounding_favours_the_follower_and_flows_are_not_pnl() -> None:
    loss = settle(CycleFigures("f", D("1000"), D("989.994"), D(0), D(0), D(0)), D("0.7"), D("0.7"))
    assert loss.compensation == D("10.01")  # 10.006 up
    gain = settle(CycleFigures("f", D("1000"), D("1010.009"), D(0), D(0), D(0)), D("0.7"), D("0.7"))
    assert gain.profit_share == D("7.00")  # 7.0063 down
    topped = settle(CycleFigures("f", D("1000"), D("1500"), D("500"), D(0), D(0)), D("0.7"), D("0.7"))
    assert topped.pnl == 0 and topped.profit_share == 0


money = st.decimals(min_value=0, max_value=10**7, places=4, allow_nan=False, allow_infinity=False)


@given(
    money,
    money,
    st.decimals(min_value=-(10**6), max_value=10**6, places=2),
    money,
    st.decimals(min_value="0.60", max_value="0.80", places=2),
)
def test_properties(e_start: Decimal, e_end: Decimal, flows: Decimal, fees: Decimal, share: Decimal) -> None:
    row = settle(CycleFigures("f", e_start, e_end, flows, fees, D(0)), share, D("0.7"))
    # a follower never ends a cycle below its starting copy equity (plus flows) after compensation
    assert e_end + row.compensation - e_start - flows >= 0 or row.pnl >= 0
    assert row.profit_share <= share * max(row.pnl, D(0))
    assert row.compensation == 0 or row.profit_share == 0
    rows = [row, settle(CycleFigures("g", e_end, e_start, D(0), fees, D(0)), share, D("0.7"))]
    t = totals(rows)
    assert t.compensation == rows[0].compensation + rows[1].compensation
    assert t.profit_share == rows[0].profit_share + rows[1].profit_share


def test_natural_weeks_are_named_by_iso_week_and_cross_year_ends() -> None:
    utc = ZoneInfo("UTC")
    week = week_of(datetime(2026, 11, 21, 12, tzinfo=UTC), utc)
    assert week.id == "2026-W47" and week.start == datetime(2026, 11, 16, tzinfo=UTC)
    assert week.end == datetime(2026, 11, 23, tzinfo=UTC)
    assert week_of(datetime(2027, 1, 1, tzinfo=UTC), utc).id == "2026-W53"  # ISO year 2026 has 53 weeks
    assert week_of(datetime(2025, 12, 31, tzinfo=UTC), utc).id == "2026-W01"
    assert parse_cycle_id("2026-W47", utc) == week


def test_weeks_across_dst_changes_in_a_local_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    spring = week_of(datetime(2026, 3, 27, tzinfo=UTC), berlin)  # clocks go forward on Sunday 29 March
    assert spring.start == datetime(2026, 3, 22, 23, tzinfo=UTC)  # Monday 00:00 CET
    assert spring.end == datetime(2026, 3, 29, 22, tzinfo=UTC)  # Monday 00:00 CEST
    assert (spring.end - spring.start).total_seconds() == 167 * 3600
    autumn = week_of(datetime(2026, 10, 22, tzinfo=UTC), berlin)  # back on Sunday 25 October: 169 hours
    assert autumn.id == "2026-W43" and autumn.start == datetime(2026, 10, 18, 22, tzinfo=UTC)
    assert autumn.end == datetime(2026, 10, 25, 23, tzinfo=UTC)
    assert (autumn.end - autumn.start).total_seconds() == 169 * 3600


def test_completed_cycles_are_oldest_first_and_short_cycles_work() -> None:
    utc = ZoneInfo("UTC")
    done = completed_cycles(datetime(2026, 11, 3, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC), utc)
    assert [c.id for c in done] == ["2026-W45", "2026-W46"]
    short = cycle_of(datetime(2026, 11, 21, 0, 0, 25, tzinfo=UTC), utc, 20)
    assert (short.end - short.start).total_seconds() == 20 and short.start.second == 20
    assert parse_cycle_id(short.id, utc, 20) == short

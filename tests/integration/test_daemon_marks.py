"""Mark prices from the exchange's stream (SPEC 12): the daemon follows one public stream for every market and
reads it with no request while it is up (the lead's leverage check, the stop loss, the marks of other
positions); sizing keeps one fresh REST read of the plan's symbol per fan-out (weight 1) for the slippage
guard. Dropped, the stream reconnects and copying goes on; down, REST stands in at a bounded rate and the stop
loss still fires. `bot run` as a real process; the MarkPrices edge with a counting venue."""

from __future__ import annotations

import math
import time
from decimal import Decimal
from pathlib import Path

from tests.conftest import BTC, ETH
from tests.daemon_harness import (
    WITHIN_THE_MINUTE_S,
    Daemon,
    event_time,
    paper_accounts,
    start_daemon,
    wait_positions,
    write_config,
)
from tests.paper_harness import Paper, running_paper

D = Decimal
MARKS = "GET /fapi/v1/premiumIndex"


async def mark_requests(paper: Paper) -> int:
    usage = (await paper.control("GET", "/limits"))["ips"].get("127.0.0.1", {})
    return int(usage.get("requests", {}).get(MARKS, 0))


async def test_sizing_reads_the_mark_price_stream_and_falls_back_to_rest_while_it_is_down(tmp_path: Path) -> None:
    async with running_paper(paper_accounts("10000", {"f1": "1000", "f2": "1000"})) as paper:
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}, "f2": {"investment": 1000}})
        daemon = await start_daemon(config, env)
        await daemon.wait_event("mark_stream_connected")
        lead = paper.client("lead")
        before = await mark_requests(paper)
        await lead.create_order(ETH, "market", "buy", 2)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.2")}, "f2": {"ETHUSDT": D("0.2")}})
        # sizing: one fresh read of ETHUSDT's mark serves the whole fan-out
        assert await mark_requests(paper) - before == 1
        await paper.control("POST", "/ws/drop", {"market": True})
        await daemon.wait_event("mark_stream_disconnected")
        await paper.control("POST", "/ws/drop", {"market": True})  # and again, while it reconnects
        await lead.create_order(BTC, "market", "buy", 0.02)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.2"), "BTCUSDT": D("0.002")}})
        await daemon.wait_event("mark_stream_resumed", timeout=30)
        assert await daemon.stop() == 0


class CountingVenue:
    def __init__(self) -> None:
        self.reads = 0

    async def mark_prices(self, priority: object = None) -> dict[str, Decimal]:
        self.reads += 1
        return {"ETHUSDT": D(3000)}


async def test_streamed_marks_are_read_without_a_request_while_fresh() -> None:
    from bot.engine.clock import SystemClock
    from bot.engine.prices import MarkPrices

    venue = CountingVenue()
    prices = MarkPrices(venue, SystemClock())  # type: ignore[arg-type]
    assert await prices.latest() == {"ETHUSDT": D(3000)} and venue.reads == 1  # no stream yet: REST
    prices.update({"ETHUSDT": D(3100), "BTCUSDT": D(50000)})
    assert await prices.latest() == {"ETHUSDT": D(3100), "BTCUSDT": D(50000)} and venue.reads == 1


async def holding_with_a_stop(tmp_path: Path, paper: Paper) -> Daemon:
    """f1 (1,000 invested, a 30 % stop loss) copying the lead's 2 ETH: 0.2 ETH, its stop at a mark of 1,500."""
    config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000, "total_stop_loss_pct": 30}})
    daemon = await start_daemon(config, env)
    await daemon.wait_event("mark_stream_connected")
    await paper.client("lead").create_order(ETH, "market", "buy", 2)
    await wait_positions(paper, {"f1": {"ETHUSDT": D("0.2")}})
    await daemon.wait_event("reconcile_completed", timeout=WITHIN_THE_MINUTE_S)
    return daemon


async def test_a_stop_loss_fired_by_a_mark_move_alone_makes_no_request_but_its_closes(tmp_path: Path) -> None:
    async with running_paper(paper_accounts("10000", {"f1": "1000"})) as paper:
        daemon = await holding_with_a_stop(tmp_path, paper)

        async def f1_requests() -> dict[str, int]:
            usage = await paper.control("GET", "/limits")
            counts: dict[str, int] = usage["requests_by_key"].get("f1-key-000001", {})
            return counts

        before = await f1_requests()
        moved = time.time()
        await paper.set_price("ETHUSDT", "1400")  # copy equity 680: below the 700 threshold, by the mark alone
        (hit,) = await daemon.wait_event("follower_stop_loss_triggered")
        fired = event_time(hit)
        assert fired - moved <= 2.0, f"fired {fired - moved:.2f}s after the mark moved"
        assert D(hit["copy_equity"]) == D(680)  # the estimate: 1,000 + 0.2 x (1,400 - 3,000)
        await daemon.wait_event("follower_stopped")
        after = await f1_requests()
        made = {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}
        # nothing to find it out: only the close-out: its order, sent before any read, then one read of the
        # account (flat, with the equity that ends the episode) and ETHUSDT's open and conditional orders
        assert made == {
            "POST /fapi/v1/order": 1,
            "GET /fapi/v3/account": 1,
            "GET /fapi/v1/openOrders": 1,
            "GET /fapi/v1/openAlgoOrders": 1,
        }
        assert await daemon.stop() == 0


def test_the_estimate_follows_marks_and_fills_exactly() -> None:
    from bot.core.risk import estimated_copy_equity, fill_sums

    # SPEC example F's follower: 1,000 of copy equity, 0.2 ETH bought at 3,000
    base, held, marks = D(1000), {"ETHUSDT": D("0.2")}, {"ETHUSDT": D(3000)}
    assert estimated_copy_equity(base, held, marks, {}, {"ETHUSDT": D(1500)}, D(0)) == D(700)
    # then it buys 0.1 more at 1,500 (fee 0.05 %) and the mark goes to 1,600
    fills = [("ETHUSDT", D("0.1"), D(1500))]
    now = {"ETHUSDT": D(1600)}
    summed = fill_sums(fills)
    assert estimated_copy_equity(base, held, marks, summed, now, D("0.0005")) == D(1000) - D(280) + D(10) - D("0.075")
    # and closes 0.3 at 1,600: the closing fill realizes at the same mark, equity moves only by the fee
    fills.append(("ETHUSDT", D("-0.3"), D(1600)))
    assert estimated_copy_equity(base, held, marks, fill_sums(fills), now, D("0.0005")) == D("729.925") - D("0.24")
    # funding: the long 0.2 pays 0.01 % of 3,000 x 0.2 at one funding time; a short 0.2 is paid at the next
    fundings = [(D("0.2"), D(3000), D("0.0001")), (D("-0.2"), D(3000), D("0.0001"))]
    assert estimated_copy_equity(base, held, marks, {}, marks, D(0), fundings[:1]) == D("999.94")
    assert estimated_copy_equity(base, held, marks, {}, marks, D(0), fundings) == D(1000)


async def test_funding_times_come_from_the_stream_as_advertised() -> None:
    from bot.engine.clock import SystemClock
    from bot.engine.prices import MarkPrices

    clock = SystemClock()
    now = clock.now_ms()
    prices = MarkPrices(CountingVenue(), clock)  # type: ignore[arg-type]
    prices.update({"ETHUSDT": D(3000)}, {"ETHUSDT": (D("0.0001"), now - 10)})  # its time has come: due
    assert prices.fundings_since(now - 1000) == [("ETHUSDT", now - 10, D("0.0001"), D(3000))]
    assert prices.fundings_since(now - 5) == []  # already in the account read at now - 5
    prices.update({"ETHUSDT": D(3010)}, {"ETHUSDT": (D("0.0002"), now + 8 * 3600 * 1000)})  # moved on
    assert prices.fundings_since(now - 1000) == [("ETHUSDT", now - 10, D("0.0001"), D(3010))]


async def test_while_the_mark_stream_is_down_rest_stands_in_at_a_bounded_rate(tmp_path: Path) -> None:
    async with running_paper(paper_accounts("10000", {"f1": "1000"})) as paper:
        daemon = await holding_with_a_stop(tmp_path, paper)
        outage_s = 8
        await paper.control("POST", "/ws/drop", {"market": True, "down_s": outage_s})
        (down,) = await daemon.wait_event("mark_stream_disconnected", timeout=30)
        before = await mark_requests(paper)
        await paper.set_price("ETHUSDT", "1400")  # copy equity 680: the 700 threshold is crossed
        (hit,) = await daemon.wait_event("follower_stop_loss_triggered", timeout=30)
        assert D(hit["copy_equity"]) == D(680)
        await daemon.wait_event("follower_stopped", timeout=30)
        (up,) = await daemon.wait_event("mark_stream_resumed", timeout=40)
        during = await mark_requests(paper) - before
        # every mark by REST at most every 2 s while the stream is down, whatever asks for them
        gap_s = event_time(up) - event_time(down)
        assert gap_s >= outage_s - 1
        assert 1 <= during <= math.ceil(gap_s / 2) + 1, f"{during} mark requests in {gap_s:.1f} s"
        assert await daemon.stop() == 0

"""Mark prices from the exchange's stream (SPEC 12): the daemon follows one public stream for every market and
reads it with no request while it is up (the lead's leverage check; the stop loss next); sizing keeps its one
fresh REST read per fan-out for the slippage guard. Dropped, the stream reconnects and copying goes on.
`bot run` as a real process; the MarkPrices edge with a counting venue."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from tests.conftest import BTC, ETH
from tests.daemon_harness import paper_accounts, start_daemon, wait_positions, write_config
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
        assert 1 <= await mark_requests(paper) - before <= 2  # sizing: one fresh read serves the fan-out
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

    async def mark_prices(self) -> dict[str, Decimal]:
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

"""`lead_source = "stream"`: lead changes copied through ccxt.pro's user data stream, through drops and expiry."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

from tests.conftest import BTC, ETH, SOL
from tests.daemon_harness import client_ids_are_unique, paper_accounts, start_daemon, wait_positions, write_config
from tests.paper_harness import running_paper

D = Decimal
# REST alone would take 30 s to notice anything: a copy within seconds can only come through the stream
STREAM = {"lead_source": "stream", "poll_interval_s": 0.5, "reconcile_interval_s": 30}


async def test_lead_changes_are_copied_through_the_stream(tmp_path: Path) -> None:
    async with running_paper(paper_accounts("10000", {"f1": "1000"})) as paper:
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}}, bot=STREAM)
        daemon = await start_daemon(config, env)
        await daemon.wait_event("stream_connected")
        lead = paper.client("lead")
        for qty in (2, 1):
            started = time.monotonic()
            await lead.create_order(ETH, "market", "buy", qty)
            await daemon.wait_event("lead_position_changed", count=3 - qty)
            assert time.monotonic() - started < 2.0
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.3")}})
        assert await daemon.stop() == 0


async def test_changes_made_while_the_stream_is_down_are_copied_once(tmp_path: Path) -> None:
    async with running_paper(paper_accounts("10000", {"f1": "1000", "f2": "2000"})) as paper:
        config, env = write_config(
            tmp_path, paper.url, {"f1": {"investment": 1000}, "f2": {"investment": 2000}}, bot=STREAM
        )
        daemon = await start_daemon(config, env)
        await daemon.wait_event("stream_connected")
        lead = paper.client("lead")
        await lead.create_order(ETH, "market", "buy", 2)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.2")}, "f2": {"ETHUSDT": D("0.4")}})
        await paper.control("POST", "/ws/drop", {"account": "lead"})
        await lead.create_order(BTC, "market", "sell", 0.05)  # while the stream is down
        await lead.create_order(SOL, "market", "buy", 20)
        (down,) = await daemon.wait_event("stream_disconnected")
        (back,) = await daemon.wait_event("stream_resumed")
        assert int(back["gap_ms"]) >= 0 and "error" in down
        await lead.create_order(ETH, "market", "sell", 1)  # and after it resumed
        expected = {
            "f1": {"ETHUSDT": D("0.1"), "BTCUSDT": D("-0.005"), "SOLUSDT": D("2")},
            "f2": {"ETHUSDT": D("0.2"), "BTCUSDT": D("-0.010"), "SOLUSDT": D("4")},
        }
        await wait_positions(paper, expected)
        assert await daemon.stop() == 0
        assert await client_ids_are_unique(paper, "f1") == 4 and await client_ids_are_unique(paper, "f2") == 4


async def test_an_expired_listen_key_is_replaced_and_copying_goes_on(tmp_path: Path) -> None:
    async with running_paper(paper_accounts("10000", {"f1": "1000"})) as paper:
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}}, bot=STREAM)
        daemon = await start_daemon(config, env)
        await daemon.wait_event("stream_connected")
        expired = await paper.control("POST", "/listen-keys/expire", {"account": "lead"})
        assert expired["expired"] == 1
        await daemon.wait_event("stream_resumed")
        lead = paper.client("lead")
        started = time.monotonic()
        await lead.create_order(ETH, "market", "buy", 3)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.3")}})
        assert time.monotonic() - started < 5.0  # through the new stream, not the 30 s REST reconciliation
        assert (await paper.state("lead"))["stream_connections"] == 1
        assert await daemon.stop() == 0

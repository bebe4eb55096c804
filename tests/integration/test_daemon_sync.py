"""`bot run` as a real process copying a lead on the paper exchange: SPEC section 3, end to end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BTC, ETH, SOL
from tests.daemon_harness import (
    client_ids_are_unique,
    paper_accounts,
    positions,
    start_daemon,
    wait_positions,
    write_config,
)
from tests.paper_harness import Paper, running_paper

D = Decimal


@pytest.fixture
async def spec_paper() -> AsyncIterator[Paper]:
    """Lead equity 10,000 and follower copy equity 1,000 (r = 0.1), no fees: SPEC's own numbers."""
    async with running_paper(paper_accounts("10000", {"f1": "1000"})) as paper:
        yield paper


async def test_spec_examples_a_b_c(spec_paper: Paper, tmp_path: Path) -> None:
    paper = spec_paper
    config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}})
    daemon = await start_daemon(config, env)
    lead = paper.client("lead")
    await lead.set_leverage(20, BTC)
    await lead.set_leverage(20, ETH)
    # A: the lead buys 0.02 BTC at 50,000 (10 % of its equity): the follower buys 0.002 BTC (10 % of its)
    await lead.create_order(BTC, "market", "buy", 0.02)
    await wait_positions(paper, {"f1": {"BTCUSDT": D("0.002")}})
    # B: the lead sells 0.005 BTC (φ = 25 %): 0.0005 truncates to 0 at step 0.001, skipped, still 0.002
    await lead.create_order(BTC, "market", "sell", 0.005)
    (skip,) = await daemon.wait_event("sync_skipped_below_minimum")
    assert skip["follower"] == "f1" and skip["symbol"] == "BTCUSDT"
    assert await positions(paper, "f1") == {"BTCUSDT": D("0.002")}
    # C: grow the follower to 4.5x (0.09 BTC = 4,500), then the lead adds 15,000 of ETH: clipped to 500
    await lead.create_order(BTC, "market", "buy", 0.885)  # lead 0.9 BTC: r · 0.885 = 0.0885 -> 0.088
    await wait_positions(paper, {"f1": {"BTCUSDT": D("0.090")}})
    await lead.create_order(ETH, "market", "buy", 5)
    await wait_positions(paper, {"f1": {"BTCUSDT": D("0.090"), "ETHUSDT": D("0.166")}})  # 500 / 3,000 truncated
    (clip,) = await daemon.wait_event("sync_clipped_by_leverage")
    assert clip["symbol"] == "ETHUSDT" and D(clip["headroom"]) == 500
    assert await daemon.stop() == 0
    assert await client_ids_are_unique(paper, "f1") == 3  # A, the step to 4.5x, C; B was skipped


async def test_each_row_of_the_table(spec_paper: Paper, tmp_path: Path) -> None:
    paper = spec_paper
    config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}})
    daemon = await start_daemon(config, env)
    lead = paper.client("lead")
    await lead.create_order(ETH, "market", "sell", 2)  # open short: r · -2 = -0.2
    await wait_positions(paper, {"f1": {"ETHUSDT": D("-0.2")}})
    await lead.create_order(ETH, "market", "sell", 1)  # increase: -0.1 more
    await wait_positions(paper, {"f1": {"ETHUSDT": D("-0.3")}})
    await lead.create_order(ETH, "market", "buy", 2)  # reduce by φ = 2/3: -0.3 -> -0.1
    await wait_positions(paper, {"f1": {"ETHUSDT": D("-0.1")}})
    await lead.create_order(ETH, "market", "buy", 3)  # flip to +2: close -0.1, open +0.2
    await wait_positions(paper, {"f1": {"ETHUSDT": D("0.2")}})
    await lead.create_order(ETH, "market", "sell", 2)  # close
    await wait_positions(paper, {"f1": {}})
    assert await daemon.stop() == 0
    assert await client_ids_are_unique(paper, "f1") == 6  # open, increase, reduce, close + open, close


async def test_copy_existing_on_and_off_and_symbol_filter(tmp_path: Path) -> None:
    accounts = paper_accounts("10000", {"on": "1000", "off": "1000", "eth_only": "2000"})
    async with running_paper(accounts) as paper:
        lead = paper.client("lead")
        await lead.create_order(ETH, "market", "buy", 2)  # held before the daemon starts
        await lead.create_order(SOL, "market", "buy", 20)
        followers: dict[str, dict[str, Any]] = {
            "on": {"investment": 1000, "copy_existing": True},
            "off": {"investment": 1000, "copy_existing": False},
            "eth_only": {"investment": 2000, "copy_existing": False, "symbols": ["ETHUSDT"]},
        }
        config, env = write_config(tmp_path, paper.url, followers)
        daemon = await start_daemon(config, env)
        await wait_positions(paper, {"on": {"ETHUSDT": D("0.2"), "SOLUSDT": D("2")}, "off": {}, "eth_only": {}})
        await lead.create_order(ETH, "market", "buy", 1)  # "off" does not copy changes until the lead is flat
        await lead.create_order(BTC, "market", "buy", 0.02)  # a fresh symbol: everyone but eth_only copies
        await wait_positions(
            paper,
            {
                "on": {"ETHUSDT": D("0.3"), "SOLUSDT": D("2"), "BTCUSDT": D("0.002")},
                "off": {"BTCUSDT": D("0.002")},
                "eth_only": {},
            },
        )
        await lead.create_order(ETH, "market", "sell", 3)  # flat in ETH ...
        flat = await daemon.wait_event("lead_position_changed", count=3)  # the daemon saw the lead flat
        assert (flat[-1]["symbol"], flat[-1]["now"]) == ("ETHUSDT", "0")
        await lead.create_order(ETH, "market", "buy", 1)  # ... so this open is copied by all three
        await wait_positions(
            paper,
            {
                "on": {"ETHUSDT": D("0.1"), "SOLUSDT": D("2"), "BTCUSDT": D("0.002")},
                "off": {"BTCUSDT": D("0.002"), "ETHUSDT": D("0.1")},
                "eth_only": {"ETHUSDT": D("0.2")},
            },
        )
        assert await daemon.stop() == 0


async def test_slippage_guard_skips_an_open_but_never_a_close(spec_paper: Paper, tmp_path: Path) -> None:
    paper = spec_paper
    config, env = write_config(
        tmp_path, paper.url, {"f1": {"investment": 1000, "max_slippage_pct": 0.5}}, bot={"poll_interval_s": 0.5}
    )
    daemon = await start_daemon(config, env)
    lead = paper.client("lead")
    await lead.create_order(ETH, "market", "buy", 2)
    await wait_positions(paper, {"f1": {"ETHUSDT": D("0.2")}})
    await daemon.wait_event("follower_order_filled")
    await lead.create_order(ETH, "market", "buy", 1)  # lead fills at 3,000 ...
    await paper.set_price("ETHUSDT", "3030")  # ... the follower would pay 1 % more: skipped
    (skip,) = await daemon.wait_event("sync_skipped_slippage")
    assert skip["symbol"] == "ETHUSDT" and skip["lead_price"] == "3000"
    await lead.create_order(ETH, "market", "sell", 3)  # the close at a moved price is never guarded
    await wait_positions(paper, {"f1": {}})
    assert await daemon.stop() == 0

"""Reconciliation against hand-made positions and orders; the shipped sample config against the shipped
sample accounts, both as real processes."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import aiohttp

from tests.conftest import BTC, ETH
from tests.daemon_harness import ROOT, bot_process, paper_accounts, start_daemon, wait_positions, write_config
from tests.integration.test_cli_paper_exchange import free_port
from tests.paper_harness import Paper, running_paper

D = Decimal


async def test_reconciliation_undoes_manual_positions_and_foreign_orders(tmp_path: Path) -> None:
    async with running_paper(paper_accounts("10000", {"f1": "1000"})) as paper:
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}}, bot={"reconcile_interval_s": 5})
        daemon = await start_daemon(config, env)
        await paper.client("lead").create_order(ETH, "market", "buy", 2)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.2")}})
        hand = paper.client("f1")  # somebody trades the follower's account by hand
        await hand.create_order(BTC, "market", "buy", 0.003)
        await hand.create_order(ETH, "market", "buy", 0.1)
        await hand.create_order(ETH, "limit", "buy", 0.01, 2500)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.2")}}, 30)  # restored; BTC closed (the lead is flat)
        kinds = {(e["kind"], e["symbol"]) for e in await daemon.wait_event("manual_intervention_detected", 3)}
        assert kinds == {("position", "BTCUSDT"), ("position", "ETHUSDT"), ("foreign_open_order", "ETHUSDT")}
        assert (await paper.state("f1"))["open_orders"] == []
        assert await daemon.stop() == 0


async def test_sample_config_copies_against_the_sample_paper_exchange(tmp_path: Path) -> None:
    port = free_port()
    exchange = await bot_process(
        "paper-exchange", "--accounts", str(ROOT / "config/paper-accounts.json"), "--port", str(port)
    )
    assert exchange.stdout is not None
    url = json.loads(await exchange.stdout.readline())["url"]
    text = (ROOT / "config/demo.toml").read_text().replace("http://127.0.0.1:8900", url)
    text = text.replace('state_dir = "var/paper"', f'state_dir = "{tmp_path / "state"}"')
    config = tmp_path / "demo.toml"
    config.write_text(text)
    env = {}
    for name in ("lead", "alice", "bob", "carol"):
        env[f"{name.upper()}_API_KEY"] = f"paper-{name}-key-0001"
        env[f"{name.upper()}_API_SECRET"] = f"paper-{name}-secret-0001"
    daemon = await start_daemon(config, env)
    sample = json.loads((ROOT / "config/paper-accounts.json").read_text())
    try:
        async with aiohttp.ClientSession() as session:
            paper = Paper(url, sample, session)
            await paper.client("lead").create_order(ETH, "market", "buy", 2)  # lead 20,000: alice r = 0.05
            await wait_positions(
                paper, {"alice": {"ETHUSDT": D("0.1")}, "bob": {"ETHUSDT": D("0.4")}, "carol": {"ETHUSDT": D("0.015")}}
            )  # bob 4,000 / 20,000; carol 150
            await paper.close()
        assert await daemon.stop() == 0
    finally:
        await daemon.kill()
        exchange.terminate()
        await exchange.wait()

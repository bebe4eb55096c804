"""SPEC section 6 enforced by the running daemon: stop loss, eligibility, capacity, reloads, the lead gone."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from decimal import Decimal
from pathlib import Path

from tests.conftest import BTC, ETH
from tests.daemon_harness import (
    client_ids_are_unique,
    follower_states,
    hup,
    paper_accounts,
    positions,
    rewrite,
    start_daemon,
    wait_positions,
    write_config,
)
from tests.paper_harness import running_paper

D = Decimal


def flows(tmp_path: Path, name: str) -> list[tuple[str, str]]:
    with sqlite3.connect(tmp_path / "state" / "copybot.sqlite3") as db:
        return list(db.execute("SELECT amount, reason FROM flows WHERE follower=? ORDER BY id", (name,)))


async def a_few_polls() -> None:
    """Lets a few polls go by (the daemon polls every 0.2 s in these tests)."""
    await asyncio.sleep(1.0)


async def test_stop_loss_at_exactly_the_threshold_closes_everything_and_survives_a_restart(tmp_path: Path) -> None:
    async with running_paper(paper_accounts("10000", {"f1": "1000"})) as paper:
        followers = {"f1": {"investment": 1000, "total_stop_loss_pct": 30}}
        config, env = write_config(tmp_path, paper.url, followers)
        daemon = await start_daemon(config, env)
        lead = paper.client("lead")
        await lead.create_order(ETH, "market", "buy", 2)
        await lead.create_order(BTC, "market", "sell", 0.02)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.2"), "BTCUSDT": D("-0.002")}})
        # copy equity = 1000 + 0.2 (P_eth - 3000) - 0.002 (P_btc - 50000); threshold 700
        await paper.set_price("ETHUSDT", "1500.05")  # copy equity 700.01: one cent above
        await a_few_polls()
        assert not daemon.named("follower_stop_loss_triggered")
        assert await positions(paper, "f1") == {"ETHUSDT": D("0.2"), "BTCUSDT": D("-0.002")}
        await paper.set_price("ETHUSDT", "1500.00")  # 700.00 exactly
        (hit,) = await daemon.wait_event("follower_stop_loss_triggered")
        assert D(hit["copy_equity"]) == D(700) and D(hit["threshold"]) == D(700)
        await wait_positions(paper, {"f1": {}})
        assert (await paper.state("f1"))["open_orders"] == []
        assert await daemon.stop() == 0
        assert follower_states(tmp_path) == {"f1": "stopped_loss"}
        restarted = await start_daemon(config, env)  # still stopped after a restart
        await paper.set_price("ETHUSDT", "3000")
        await lead.create_order(ETH, "market", "buy", 1)
        await restarted.wait_event("lead_position_changed")
        await a_few_polls()
        assert await positions(paper, "f1") == {}
        assert not restarted.named("follower_order_submitted")
        assert await restarted.stop() == 0
        assert await client_ids_are_unique(paper, "f1") == 4  # two copies, two closes


async def test_capacity_example_e_and_a_waiting_follower_admitted_when_the_lead_grows(tmp_path: Path) -> None:
    accounts = paper_accounts("12000", {"a": "30000", "b": "20000", "c": "7000", "d": "1000"})
    async with running_paper(accounts) as paper:
        followers = {n: {"investment": int(u)} for n, u in (("a", 30000), ("b", 20000), ("c", 7000), ("d", 1000))}
        config, env = write_config(tmp_path, paper.url, followers)
        daemon = await start_daemon(config, env)
        # capacity 12,000 / 0.20 = 60,000; admitted while AUM stays <= 57,000: a, b, c (57,000); d waits
        (waiting,) = await daemon.wait_event("follower_pending_capacity")
        assert waiting["follower"] == "d" and D(waiting["capacity"]) == D(60000) and D(waiting["aum"]) == D(57000)
        assert follower_states(tmp_path) == {"a": "active", "b": "active", "c": "active", "d": "pending_capacity"}
        await paper.client("lead").create_order(ETH, "market", "buy", 1)
        await wait_positions(paper, {"a": {"ETHUSDT": D("2.5")}, "c": {"ETHUSDT": D("0.583")}, "d": {}})
        await paper.control("POST", "/accounts/lead/deposit", {"amount": "300"})  # capacity 61,500: 58,000 fits
        activated = await daemon.wait_event("follower_activated", count=4)
        assert activated[-1]["follower"] == "d"
        await wait_positions(paper, {"d": {"ETHUSDT": D("0.081")}})  # copy_existing: 1,000 / 12,300 · 1
        assert await daemon.stop() == 0


async def test_a_lead_below_10000_activates_no_one(tmp_path: Path) -> None:
    async with running_paper(paper_accounts("9999.99", {"f1": "1000"})) as paper:
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}})
        daemon = await start_daemon(config, env)
        (ineligible,) = await daemon.wait_event("lead_ineligible")
        assert ineligible["active"] is True and ineligible["lead_equity"] == "9999.99000000"
        await paper.client("lead").create_order(ETH, "market", "buy", 1)
        await daemon.wait_event("lead_position_changed")
        await a_few_polls()
        assert await positions(paper, "f1") == {} and follower_states(tmp_path) == {"f1": "pending_capacity"}
        await paper.control("POST", "/accounts/lead/deposit", {"amount": "0.01"})  # eligible: f1 activates
        ended = await daemon.wait_event("lead_ineligible", count=2)
        assert ended[-1]["active"] is False
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.1")}})  # and copies the position it found
        assert len(daemon.named("lead_ineligible")) == 2  # logged when it starts and ends, not every poll
        assert await daemon.stop() == 0


async def test_investment_decrease_and_increase_through_sighup(tmp_path: Path) -> None:
    async with running_paper(paper_accounts("10000", {"f1": "2000"})) as paper:
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}})
        daemon = await start_daemon(config, env)
        lead = paper.client("lead")
        await lead.create_order(ETH, "market", "buy", 2)
        await lead.create_order(BTC, "market", "buy", 0.04)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.2"), "BTCUSDT": D("0.004")}})
        rewrite(config, "investment = 1000", "investment = 500")
        await hup(daemon)  # a decrease reduces every position by the same fraction, at once
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.1"), "BTCUSDT": D("0.002")}})
        rewrite(config, "investment = 500", "investment = 1500")
        await hup(daemon)  # an increase (capacity allows it) is a top-up: later copies are sized on 1,500
        (changed,) = [e for e in await daemon.wait_event("follower_investment_changed", count=2) if e["flow"] == "1000"]
        assert changed["investment"] == "1500"
        await lead.create_order(ETH, "market", "buy", 2)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.4"), "BTCUSDT": D("0.002")}})  # + 0.15 · 2 = 0.3
        assert flows(tmp_path, "f1") == [("1000", "activation"), ("-500", "investment"), ("1000", "investment")]
        rewrite(config, "investment = 1500", "investment = [oops")
        daemon.proc.send_signal(signal.SIGHUP)  # a reload that fails validation changes nothing
        (failed,) = await daemon.wait_event("config_reload_failed")
        assert any("TOML" in p for p in failed["problems"])
        assert await daemon.stop() == 0


async def test_follower_removed_and_added_then_the_lead_removed(tmp_path: Path) -> None:
    async with running_paper(paper_accounts("10000", {"f1": "1000", "f2": "1000", "f3": "1000"})) as paper:
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}, "f2": {"investment": 1000}})
        env |= {"F3_API_KEY": "f3-key-000001", "F3_API_SECRET": "f3-secret-000001"}
        daemon = await start_daemon(config, env)
        lead = paper.client("lead")
        await lead.create_order(ETH, "market", "buy", 2)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.2")}, "f2": {"ETHUSDT": D("0.2")}})
        text = config.read_text()
        f2_block = text[text.index('[[followers]]\nname = "f2"') :]
        config.write_text(text.replace(f2_block, f2_block.replace('"f2"', '"f3"').replace("F2_", "F3_")))
        await hup(daemon)  # f2 removed: closed and ended; f3 added: activated with the lead's position
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.2")}, "f2": {}, "f3": {"ETHUSDT": D("0.2")}})
        await daemon.wait_event("follower_ended")  # ended once a read shows its account flat
        assert follower_states(tmp_path) == {"f1": "active", "f2": "ended", "f3": "active"}
        await lead.create_order(ETH, "market", "buy", 1)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.3")}, "f2": {}, "f3": {"ETHUSDT": D("0.3")}})
        text = config.read_text()
        config.write_text(text[: text.index("[lead]")] + text[text.index("[[followers]]") :])
        daemon.proc.send_signal(signal.SIGHUP)  # the lead removed: every follower closed, copying ends
        (gone,) = await daemon.wait_event("lead_gone")
        assert gone["reason"] == "lead removed from the configuration"
        assert await asyncio.wait_for(daemon.proc.wait(), 20) == 0
        await daemon.stop()
        await wait_positions(paper, {"f1": {}, "f3": {}})
        assert follower_states(tmp_path) == {"f1": "ended", "f2": "ended", "f3": "ended"}


async def test_a_lead_whose_key_keeps_failing_closes_everyone(tmp_path: Path) -> None:
    async with running_paper(paper_accounts("10000", {"f1": "1000"})) as paper:
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}}, bot={"lead_auth_grace_s": 1.0})
        daemon = await start_daemon(config, env)
        await paper.client("lead").create_order(ETH, "market", "buy", 2)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.2")}})
        await paper.control("POST", "/accounts/lead/key", {"enabled": False})
        (gone,) = await daemon.wait_event("lead_gone")
        assert "key has failed" in gone["reason"]
        assert await asyncio.wait_for(daemon.proc.wait(), 20) == 3
        await daemon.stop()
        assert await positions(paper, "f1") == {}
        assert follower_states(tmp_path) == {"f1": "ended"}

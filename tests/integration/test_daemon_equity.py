"""A follower's copy equity without polling (SPEC 12): estimated from its last account read, its own fills (at
the commission rate the daemon assumes) and the mark-price stream, and trued up by the account read of each
reconciliation, which logs the drift (`equity_drift`) and corrects it. `bot run` as a real process, limits on."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from tests.conftest import ETH
from tests.daemon_harness import paper_accounts, start_daemon, wait_positions, write_config
from tests.paper_harness import running_paper

D = Decimal


async def test_fees_at_the_followers_own_rate_and_a_deposit_behind_the_daemons_back(tmp_path: Path) -> None:
    accounts = paper_accounts("10000", {"f1": "1000"}, commission="0.0005")
    accounts["accounts"][1]["commission"] = {"maker": "0.0002", "taker": "0.001"}  # f1 pays twice the lead's rate
    async with running_paper(accounts) as paper:
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}}, bot={"reconcile_interval_s": 5})
        daemon = await start_daemon(config, env)
        (rate,) = await daemon.wait_event("commission_rate_read")  # in the background, at the lowest priority
        assert (D(rate["taker_rate"]), D(rate["assumed_before"])) == (D("0.001"), D("0.0005"))
        await paper.client("lead").create_order(ETH, "market", "buy", 2)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.2")}})
        passes = len(daemon.named("reconcile_completed"))
        await daemon.wait_event("reconcile_completed", count=passes + 1, timeout=30)
        assert daemon.named("equity_drift") == []  # its fee (0.60) was estimated at its own rate
        await paper.control("POST", "/accounts/f1/deposit", {"amount": "500"})
        (deposit,) = await daemon.wait_event("equity_drift")
        assert (D(deposit["estimated"]), D(deposit["actual"])) == (D("999.4"), D("1499.4"))
        # its tier changes behind the daemon's back: the next fee is charged at 0.2 %, estimated at 0.1 %. And
        # the plan is sized on the trued-up equity: the lead's +2 ETH (its equity 9,994 after two fees) is
        # +0.300 ETH for a copy equity of 1,499.40
        await paper.control("POST", "/accounts/f1/commission", {"maker": "0.0002", "taker": "0.002"})
        await paper.client("lead").create_order(ETH, "market", "buy", 2)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.5")}})
        _, fee = await daemon.wait_event("equity_drift", count=2)
        assert D(fee["drift"]) == D("-0.9")  # 0.1 % more on 900 USDT
        assert await daemon.stop() == 0


async def test_funding_at_the_exchanges_rate_and_times_is_in_the_estimate(tmp_path: Path) -> None:
    accounts = paper_accounts("10000", {"f1": "1000"})
    accounts["funding"] = {"rate": "0.001", "interval_s": 3}  # at every multiple of 3 s, as advertised
    async with running_paper(accounts) as paper:
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}}, bot={"reconcile_interval_s": 5})
        daemon = await start_daemon(config, env)
        await paper.client("lead").create_order(ETH, "market", "buy", 2)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.2")}})
        passes = len(daemon.named("reconcile_completed"))
        await daemon.wait_event("reconcile_completed", count=passes + 4, timeout=60)  # four true-ups, 20 s
        paid = [i for i in (await paper.state("f1"))["income"] if i["incomeType"] == "FUNDING_FEE"]
        assert len(paid) >= 5 and {D(i["income"]) for i in paid} == {D("-0.6")}  # 0.2 x 3,000 x 0.1 %
        # without funding in the estimate every true-up would be off by 0.60 or 1.20; a read that lands within
        # milliseconds of a funding time may still see it on the other side, once
        assert len(daemon.named("equity_drift")) <= 1, daemon.named("equity_drift")
        assert await daemon.stop() == 0

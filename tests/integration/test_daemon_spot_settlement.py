"""Weekly settlement on spot (SPEC 7, 11): copy equity without the reserve, transfers between spot wallets.
Short cycles (`cycle_seconds`) stand in for weeks."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from tests.daemon_harness import spot_accounts, start_daemon, write_config
from tests.integration.test_daemon_settlement import CYCLE, next_cycle_recorded, report, rows, settled_after
from tests.integration.test_daemon_spot import spot_balances, wait_balance
from tests.paper_harness import running_paper

D = Decimal


async def test_a_losing_and_a_winning_spot_follower_with_transfers_between_spot_wallets(tmp_path: Path) -> None:
    """`win` copies ETH (+300 a coin), `lose` copies BTC (-5,000 a coin); `lose` also holds 1 SOL of its own,
    whose fall is not its copy PnL. The treasury moves the profit share and the compensation between spot
    wallets."""
    wallets = {"win": {"USDT": "1000"}, "lose": {"USDT": "2000", "SOL": "1"}}
    accounts = spot_accounts({"USDT": "10000"}, wallets, commission="0")
    # settlement cycles of seconds stand in for weeks: the per-IP weight tenfold (as `bot demo`)
    accounts["limits"] = {"request_weight_per_minute": 24000, "spot": {"request_weight_per_minute": 60000}}
    async with running_paper(accounts) as paper:
        followers = {
            "win": {"investment": 1000, "symbols": ["ETHUSDT"]},
            "lose": {"investment": 2000, "symbols": ["BTCUSDT"]},
        }
        config, env = write_config(
            tmp_path, paper.url, followers, bot={"market": "spot"}, cycle_seconds=CYCLE, treasury=True
        )
        daemon = await start_daemon(config, env)
        lead = paper.spot_client("lead")
        await lead.load_markets()
        await lead.create_order("ETH/USDT", "market", "buy", 2)
        await wait_balance(paper, "win", "ETH", "0.2")
        await lead.create_order("BTC/USDT", "market", "buy", 0.02)
        await wait_balance(paper, "lose", "BTC", "0.004")
        moment = await next_cycle_recorded(daemon)
        await paper.set_price("ETHUSDT", "3300")  # win: 0.2 · 300 = +60
        await paper.set_price("BTCUSDT", "45000")  # lose: 0.004 · -5,000 = -20
        await paper.set_price("SOLUSDT", "100")  # lose's own SOL: -50, not copy PnL
        event = await settled_after(daemon, moment)
        await daemon.wait_event("transfer_completed", count=2)
        data = report(tmp_path, event["cycle"])
        win, lose = rows(data)["win"], rows(data)["lose"]
        assert (D(win["e_start"]), D(win["e_end"]), D(win["pnl"])) == (D(1000), D(1060), D(60))
        assert (D(win["profit_share"]), D(win["compensation"])) == (D("42.00"), D(0))
        assert (D(lose["e_start"]), D(lose["e_end"]), D(lose["pnl"])) == (D(2000), D(1980), D(-20))
        assert (D(lose["compensation"]), D(lose["profit_share"])) == (D("20.00"), D(0))
        assert {t["status"] for t in data["transfers"]} == {"done"}
        # the spot wallets moved by exactly the transfers
        assert (await spot_balances(paper, "win"))["USDT"] == D(400) - D(42)
        assert (await spot_balances(paper, "lose"))["USDT"] == D(1800) + D(20)
        assert (await spot_balances(paper, "lead"))["USDT"] == D(10000) - D(6000) - D(1000) + D(42) - D(20)
        assert await daemon.stop() == 0

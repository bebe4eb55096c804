"""`bot run` copying a spot lead on the paper exchange's Binance spot (SPEC 11), end to end."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from tests.daemon_harness import drop_follower, eventually, hup, spot_accounts, start_daemon, write_config
from tests.paper_harness import Paper, running_paper

D = Decimal
BTC = "BTC/USDT"


async def spot_balances(paper: Paper, name: str) -> dict[str, Decimal]:
    rows = (await paper.state(name))["spot"]["account"]["balances"]
    return {r["asset"]: D(r["free"]) + D(r["locked"]) for r in rows if D(r["free"]) + D(r["locked"])}


async def wait_balance(paper: Paper, name: str, asset: str, amount: str, timeout: float = 20) -> None:
    async def check() -> bool:
        return (await spot_balances(paper, name)).get(asset, D(0)) == D(amount)

    await eventually(check, timeout, f"{name} holding {amount} {asset}")


async def test_spec_example_g_fee_in_btc_and_the_dust_left(tmp_path: Path) -> None:
    """Lead 10,000 USDT buys 0.02 BTC (fee in BTC: 0.01998 held), sells 0.015, sells out; the follower with
    1,000 buys 0.00199, sells 0.00149, then 0.00049, and keeps 0.00000801 BTC of dust."""
    async with running_paper(spot_accounts({"USDT": "10000"}, {"f1": {"USDT": "1000"}})) as paper:
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}}, bot={"market": "spot"})
        daemon = await start_daemon(config, env)
        lead = paper.spot_client("lead")
        await lead.load_markets()
        await lead.create_order(BTC, "market", "buy", 0.02)
        await wait_balance(paper, "f1", "BTC", "0.00198801")
        await lead.create_order(BTC, "market", "sell", 0.015)
        await wait_balance(paper, "f1", "BTC", "0.00049801")
        await lead.create_order(BTC, "market", "sell", 0.00498)
        await wait_balance(paper, "f1", "BTC", "0.00000801")
        balances = await spot_balances(paper, "f1")
        # 1,000 - 99.50 + (74.50 - 0.0745) + (24.50 - 0.0245)
        assert balances == {"BTC": D("0.00000801"), "USDT": D("999.401")}
        assert await daemon.stop() == 0
        sizes = [(e["side"], D(e["qty"])) for e in daemon.named("follower_order_filled")]
        assert sizes == [("buy", D("0.00199")), ("sell", D("0.00149")), ("sell", D("0.00049"))]


async def test_buy_existing_on_and_off_and_a_reserve_that_is_never_sold(tmp_path: Path) -> None:
    """The lead holds 0.1 BTC of 10,000 at the start. `on` (copy_existing) buys r · 0.1; `off` does not, and its
    own 0.02 BTC (held before copying: its reserve) is never sold, not by a lead sale, not by a stop loss, not
    on removal; BTC's fall moves its account value, not its copy equity (no stop loss at 10 %)."""
    wallets = {"on": {"USDT": "1000"}, "off": {"USDT": "1000", "BTC": "0.02"}}
    async with running_paper(spot_accounts({"USDT": "5000", "BTC": "0.1"}, wallets)) as paper:
        followers = {
            "on": {"investment": 1000, "copy_existing": True},
            "off": {"investment": 1000, "copy_existing": False, "total_stop_loss_pct": 10},
        }
        config, env = write_config(tmp_path, paper.url, followers, bot={"market": "spot"})
        daemon = await start_daemon(config, env)
        await wait_balance(paper, "on", "BTC", "0.00999")  # r = 0.1: 0.01 BTC, less its 0.1 % fee in BTC
        lead = paper.spot_client("lead")
        await lead.load_markets()
        await lead.create_order(BTC, "market", "sell", 0.05)  # φ = 0.5
        await wait_balance(paper, "on", "BTC", "0.00500")  # 0.00999 - 0.00499
        await paper.set_price("BTCUSDT", "20000")  # off's account: 2,000 -> 1,400; its copy equity stays 1,000
        await lead.create_order(BTC, "market", "buy", 0.01)  # a change: every follower steps (and checks)
        await daemon.wait_event("follower_order_filled", count=3)  # on: bootstrap, sale, this buy
        assert await spot_balances(paper, "off") == {"USDT": D(1000), "BTC": D("0.02")}
        assert not daemon.named("follower_stop_loss_triggered")
        drop_follower(config, "off")
        await hup(daemon)
        (released,) = await daemon.wait_event("follower_funds_released")
        assert released["follower"] == "off" and D(released["released_usdt"]) == D(1000)
        assert await spot_balances(paper, "off") == {"USDT": D(1000), "BTC": D("0.02")}
        assert await daemon.stop() == 0


async def test_stop_loss_on_a_price_fall_sells_the_copy_holdings_only(tmp_path: Path) -> None:
    wallets = {"f1": {"USDT": "1000", "SOL": "1"}}
    async with running_paper(spot_accounts({"USDT": "10000"}, wallets)) as paper:
        followers = {"f1": {"investment": 1000, "total_stop_loss_pct": 10}}
        config, env = write_config(tmp_path, paper.url, followers, bot={"market": "spot"})
        daemon = await start_daemon(config, env)
        lead = paper.spot_client("lead")
        await lead.load_markets()
        await lead.create_order(BTC, "market", "buy", 0.1)  # half the lead's equity: r · 0.0999 = 0.00999
        await wait_balance(paper, "f1", "BTC", "0.00998001")  # less 0.1 % in BTC
        await paper.set_price("BTCUSDT", "30000")  # copy equity about 501 + 299 = 800: at most 900 stops
        (hit,) = await daemon.wait_event("follower_stop_loss_triggered")
        assert D(hit["copy_equity"]) <= 900
        await daemon.wait_event("follower_stopped")
        balances = await spot_balances(paper, "f1")
        assert balances["SOL"] == D(1)  # the reserve: never sold
        assert balances.get("BTC", D(0)) < D("0.00001")  # only dust is left
        assert await daemon.stop() == 0


async def test_cash_cap_clips_a_buy_that_the_copy_usdt_cannot_pay(tmp_path: Path) -> None:
    """The lead buys with all its USDT after BTC fell: the follower's copy equity is partly in BTC, its buy is
    clipped to its copy USDT (with the slippage margin), logged, and never refused by the exchange."""
    async with running_paper(spot_accounts({"USDT": "10000"}, {"f1": {"USDT": "1000"}})) as paper:
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}}, bot={"market": "spot"})
        daemon = await start_daemon(config, env)
        lead = paper.spot_client("lead")
        await lead.load_markets()
        await lead.create_order(BTC, "market", "buy", 0.1)
        await wait_balance(paper, "f1", "BTC", "0.00998001")
        await paper.set_price("BTCUSDT", "40000")
        await lead.create_order("ETH/USDT", "market", "buy", None, None, {"quoteOrderQty": "4990"})
        (clip,) = await daemon.wait_event("sync_clipped_by_cash")
        assert clip["symbol"] == "ETHUSDT"
        await daemon.wait_event("follower_order_filled", count=2)
        balances = await spot_balances(paper, "f1")
        assert D(0) <= balances["USDT"] < D(5) and balances["ETH"] > 0
        assert not daemon.named("follower_order_rejected")
        assert await daemon.stop() == 0

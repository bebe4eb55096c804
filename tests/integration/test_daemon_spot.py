"""`bot run` copying a spot lead on the paper exchange's Binance spot (SPEC 11), end to end."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from tests.daemon_harness import eventually, spot_accounts, start_daemon, write_config
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

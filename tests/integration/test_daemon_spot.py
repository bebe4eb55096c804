"""`bot run` copying a spot lead on the paper exchange's Binance spot (SPEC 11), end to end."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

from tests.daemon_harness import (
    client_ids_are_unique,
    drop_follower,
    eventually,
    hup,
    rewrite,
    slow_orders,
    spot_accounts,
    start_daemon,
    write_config,
)
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


def on_step(qty: Decimal, step: Decimal) -> Decimal:
    return (qty / step).to_integral_value(rounding=ROUND_DOWN) * step


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


async def test_a_lead_rebalancing_over_three_assets_step_by_step(tmp_path: Path) -> None:
    """Each follower's copy holdings after every lead change equal the SPEC 11 table applied to that change
    (not to the final state): computed here from the lead's own holdings as the exchange reports them."""
    followers = {"a": {"USDT": "1000"}, "b": {"USDT": "2500"}}
    async with running_paper(spot_accounts({"USDT": "10000"}, followers, commission="0")) as paper:
        config, env = write_config(
            tmp_path, paper.url, {"a": {"investment": 1000}, "b": {"investment": 2500}}, bot={"market": "spot"}
        )
        daemon = await start_daemon(config, env)
        lead = paper.spot_client("lead")
        await lead.load_markets()
        steps = [
            ("BTC/USDT", "buy", "0.04"),  # 2,000 of 10,000
            ("ETH/USDT", "buy", "1"),  # 3,000
            ("SOL/USDT", "buy", "10"),  # 1,500
            ("BTC/USDT", "sell", "0.01"),  # φ = 1/4
            ("ETH/USDT", "sell", "1"),  # out
            ("SOL/USDT", "sell", "6"),  # φ = 3/5
            ("ETH/USDT", "buy", "0.5"),
        ]
        steps_of = {"BTC/USDT": D("0.00001"), "ETH/USDT": D("0.0001"), "SOL/USDT": D("0.001")}
        ratio = {"a": D("0.1"), "b": D("0.25")}  # fixed prices, no fees: the equities never move
        lead_held: dict[str, Decimal] = {}
        expected: dict[str, dict[str, Decimal]] = {"a": {}, "b": {}}
        for count, (symbol, side, qty) in enumerate(steps, start=1):
            await lead.create_order(symbol, "market", side, float(qty))
            before = lead_held.get(symbol, D(0))
            after = before + D(qty) if side == "buy" else before - D(qty)
            lead_held[symbol] = after
            for name in expected:
                held = expected[name].get(symbol, D(0))
                if after > before:
                    held += on_step(ratio[name] * (after - before), steps_of[symbol])
                else:
                    held -= on_step(held * (before - after) / before if after else held, steps_of[symbol])
                expected[name][symbol] = held
            await daemon.wait_event("lead_position_changed", count=count)
            for name, holdings in expected.items():
                for sym, amount in holdings.items():
                    await wait_balance(paper, name, sym.split("/")[0], str(amount))
        assert await daemon.stop() == 0


async def test_investment_decrease_and_increase_by_sighup_then_the_lead_gone(tmp_path: Path) -> None:
    async with running_paper(spot_accounts({"USDT": "10000"}, {"f1": {"USDT": "2000"}}, commission="0")) as paper:
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}}, bot={"market": "spot"})
        daemon = await start_daemon(config, env)
        lead = paper.spot_client("lead")
        await lead.load_markets()
        await lead.create_order("ETH/USDT", "market", "buy", 1)
        await lead.create_order(BTC, "market", "buy", 0.02)
        await wait_balance(paper, "f1", "ETH", "0.1")
        await wait_balance(paper, "f1", "BTC", "0.002")
        rewrite(config, "investment = 1000", "investment = 500")
        await hup(daemon)  # a decrease sells the same fraction of every copy holding, releasing USDT
        await wait_balance(paper, "f1", "ETH", "0.05")
        await wait_balance(paper, "f1", "BTC", "0.001")
        rewrite(config, "investment = 500", "investment = 1500")
        await hup(daemon)  # an increase: later buys are sized on 1,500 (r = 0.15)
        await daemon.wait_event("follower_investment_changed", count=2)
        await lead.create_order("ETH/USDT", "market", "buy", 1)
        await wait_balance(paper, "f1", "ETH", "0.2")
        text = config.read_text()
        config.write_text(text[: text.index("[lead]")] + text[text.index("[[followers]]") :])
        daemon.proc.send_signal(signal.SIGHUP)  # the lead removed: every copy holding sold, copying ends
        (gone,) = await daemon.wait_event("lead_gone")
        assert gone["reason"] == "lead removed from the configuration"
        (released,) = await daemon.wait_event("follower_funds_released")
        assert D(released["released_usdt"]) == D(1500)  # fixed prices, no fees: the investment comes back
        assert await asyncio.wait_for(daemon.proc.wait(), 20) == 0
        await daemon.stop()
        assert await spot_balances(paper, "f1") == {"USDT": D(2000)}


async def test_sigkill_mid_spot_fan_out_in_a_loop_never_duplicates_and_ends_exact(tmp_path: Path) -> None:
    """Five followers; the daemon is killed at different points of spot fan-outs, restarted, killed again: no
    order twice, holdings exact (an order whose answer was lost is found by its client order id)."""
    followers = {f"f{i}": {"USDT": str(3000 * i)} for i in range(1, 6)}  # r = 0.1 .. 0.5 of a 30,000 lead
    rng = random.Random(7)
    async with running_paper(spot_accounts({"USDT": "30000"}, followers, commission="0")) as paper:
        config, env = write_config(
            tmp_path,
            paper.url,
            {n: {"investment": 3000 * i} for i, n in enumerate(followers, start=1)},
            bot={"market": "spot"},
        )
        await slow_orders(paper, followers, delay_s=0.15, count=1000, path="/api/v3/order")
        lead = paper.spot_client("lead")
        await lead.load_markets()
        lead_eth = D(0)
        for round_ in range(5):
            daemon = await start_daemon(config, env)
            side, qty = ("buy", 2) if round_ % 2 == 0 else ("sell", 1)
            await lead.create_order("ETH/USDT", "market", side, qty)
            lead_eth += qty if side == "buy" else -qty
            submitted = len(daemon.named("follower_order_submitted"))
            await daemon.wait_event("follower_order_submitted", count=submitted + 1)
            await asyncio.sleep(rng.uniform(0.0, 0.5))
            daemon.proc.send_signal(signal.SIGKILL)
            await daemon.kill()
        final = await start_daemon(config, env)
        for i, name in enumerate(followers, start=1):
            await wait_balance(paper, name, "ETH", str(lead_eth * i / 10), timeout=60)
        assert await final.stop() == 0
        for name in followers:
            await client_ids_are_unique(paper, name, spot=True)


async def test_the_spot_user_data_stream_wakes_the_lead_read(tmp_path: Path) -> None:
    """`lead_source = "stream"` on spot: ccxt.pro's spot user data stream (the websocket API) wakes the REST
    read at once, with REST polling far apart; a drop is survived and what happened meanwhile copied once."""
    async with running_paper(spot_accounts({"USDT": "10000"}, {"f1": {"USDT": "1000"}}, commission="0")) as paper:
        stream = {"market": "spot", "lead_source": "stream", "poll_interval_s": 0.2, "reconcile_interval_s": 60}
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}}, bot=stream)
        daemon = await start_daemon(config, env)
        await daemon.wait_event("stream_connected")
        lead = paper.spot_client("lead")
        await lead.load_markets()
        started = time.monotonic()
        await lead.create_order("ETH/USDT", "market", "buy", 2)
        await daemon.wait_event("lead_position_changed")
        assert time.monotonic() - started < 2.0  # the stream, not the 60 s REST confirmation
        await wait_balance(paper, "f1", "ETH", "0.2")
        await paper.control("POST", "/ws/drop", {"account": "lead"})
        await lead.create_order("ETH/USDT", "market", "buy", 1)  # while the stream is down
        await wait_balance(paper, "f1", "ETH", "0.3")
        await daemon.wait_event("stream_resumed")
        assert await daemon.stop() == 0
        assert await client_ids_are_unique(paper, "f1", spot=True) == 2


async def test_an_order_whose_answer_was_lost_is_found_by_lookup_with_its_fee(tmp_path: Path) -> None:
    async with running_paper(spot_accounts({"USDT": "10000"}, {"f1": {"USDT": "1000"}})) as paper:
        config, env = write_config(
            tmp_path, paper.url, {"f1": {"investment": 1000}}, bot={"market": "spot", "request_timeout_ms": 400}
        )
        daemon = await start_daemon(config, env)
        # the follower's next order executes, but its answer comes after the client's timeout
        await paper.control(
            "POST",
            "/faults",
            {"path": "/api/v3/order", "method": "POST", "account": "f1", "kind": "delay", "delay_s": 1.2},
        )
        lead = paper.spot_client("lead")
        await lead.load_markets()
        await lead.create_order(BTC, "market", "buy", 0.02)  # r · 0.01998 -> 0.00199
        (unknown,) = await daemon.wait_event("order_outcome_unknown")
        (filled,) = await daemon.wait_event("follower_order_filled")
        assert unknown["client_order_id"] == filled["client_order_id"]
        await wait_balance(paper, "f1", "BTC", "0.00198801")
        assert await client_ids_are_unique(paper, "f1", spot=True) == 1  # one order, never a second
        await lead.create_order(BTC, "market", "sell", 0.01998)  # sell out: the holding known net of its fee
        await wait_balance(paper, "f1", "BTC", "0.00000801")
        assert await daemon.stop() == 0


async def test_reconciliation_shrinks_a_copy_holding_sold_behind_the_bots_back(tmp_path: Path) -> None:
    """Someone sells part of f1's copied BTC and leaves a limit order of their own: reconciliation logs the
    shortfall, the copy holding shrinks to what is there, the foreign order is cancelled; the reserve
    (0.5 SOL) absorbs a sale of the user's own SOL without any intervention."""
    wallets = {"f1": {"USDT": "1000", "SOL": "0.5"}}
    async with running_paper(spot_accounts({"USDT": "10000"}, wallets, commission="0")) as paper:
        config, env = write_config(
            tmp_path, paper.url, {"f1": {"investment": 1000}}, bot={"market": "spot", "reconcile_interval_s": 5}
        )
        daemon = await start_daemon(config, env)
        lead = paper.spot_client("lead")
        await lead.load_markets()
        await lead.create_order(BTC, "market", "buy", 0.04)
        await wait_balance(paper, "f1", "BTC", "0.004")
        f1 = paper.spot_client("f1")
        await f1.load_markets()
        await f1.create_order(BTC, "market", "sell", 0.001)  # behind the bot's back
        await f1.create_order("SOL/USDT", "market", "sell", 0.2)  # their own reserve: theirs to sell
        await f1.create_order("ETH/USDT", "limit", "buy", 0.01, 2000, {"timeInForce": "GTC"})
        found = await daemon.wait_event("manual_intervention_detected", count=2, timeout=30)
        kinds = {e["kind"]: e for e in found}
        assert D(kinds["holding"]["short"]) == D("0.001") and kinds["holding"]["symbol"] == "BTCUSDT"
        assert "foreign_open_order" in kinds
        await daemon.wait_event("reserve_reduced", timeout=30)
        assert await f1.fetch_open_orders("ETH/USDT") == []
        await lead.create_order(BTC, "market", "sell", 0.04)  # sell out: what the copy holding says is there
        await wait_balance(paper, "f1", "BTC", "0")
        assert (await spot_balances(paper, "f1"))["SOL"] == D("0.3")
        assert not daemon.named("follower_order_rejected")
        assert await daemon.stop() == 0


async def test_usdt_moving_in_or_out_of_the_lead_changes_its_equity_not_its_holdings(tmp_path: Path) -> None:
    """The lead's deposit is no lead change (nothing is copied), but it doubles the lead's equity: the next buy
    is sized on it (r = 1,000 / 20,000)."""
    async with running_paper(spot_accounts({"USDT": "10000"}, {"f1": {"USDT": "1000"}}, commission="0")) as paper:
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}}, bot={"market": "spot"})
        daemon = await start_daemon(config, env)
        await paper.control("POST", "/accounts/lead/spot/deposit", {"asset": "USDT", "amount": "10000"})
        lead = paper.spot_client("lead")
        await lead.load_markets()
        await lead.create_order("ETH/USDT", "market", "buy", 2)
        await wait_balance(paper, "f1", "ETH", "0.1")
        (change,) = daemon.named("lead_position_changed")
        assert (change["lead_change"], change["symbol"], D(change["lead_equity"])) == ("1", "ETHUSDT", D(20000))
        assert await daemon.stop() == 0

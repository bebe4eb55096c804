"""Orders off the happy path, with `bot run` as a real process: an order the exchange still holds open, a 429
with Retry-After, conditional orders placed by hand."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from tests.conftest import ETH
from tests.daemon_harness import (
    WITHIN_THE_MINUTE_S,
    drop_follower,
    event_time,
    fault,
    hup,
    paper_accounts,
    start_daemon,
    wait_positions,
    write_config,
)
from tests.paper_harness import running_paper

D = Decimal
ORDER = "/fapi/v1/order"


async def test_an_order_the_exchange_still_holds_open_is_followed_until_it_fills(tmp_path: Path) -> None:
    async with running_paper(paper_accounts("10000", {"f1": "1000"})) as paper:
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}})
        daemon = await start_daemon(config, env)
        # the matching engine is behind: the order is answered NEW and fills 1.5 s later
        await fault(paper, path=ORDER, method="POST", account="f1", kind="queue", delay_s=1.5)
        await paper.client("lead").create_order(ETH, "market", "buy", 2)
        (working,) = await daemon.wait_event("follower_order_working")
        (filled,) = await daemon.wait_event("follower_order_filled")
        assert filled["status"] == "filled" and filled["qty"] == "0.200"
        assert filled["client_order_id"] == working["client_order_id"]
        assert await daemon.stop() == 0
        restarted = await start_daemon(config, env)  # reconciles at start: the fill is the follower's own
        (reconciled,) = await restarted.wait_event("reconcile_completed", timeout=WITHIN_THE_MINUTE_S)
        assert reconciled["corrections"] == "0" and not restarted.named("manual_intervention_detected")
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.2")}})
        assert await restarted.stop() == 0


async def test_an_order_answered_429_waits_for_retry_after_before_any_request(tmp_path: Path) -> None:
    async with running_paper(paper_accounts("10000", {"f1": "1000"})) as paper:
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}})
        daemon = await start_daemon(config, env)
        await fault(paper, path=ORDER, method="POST", account="f1", kind="429", retry_after=2)
        await paper.client("lead").create_order(ETH, "market", "buy", 2)
        (unknown,) = await daemon.wait_event("order_outcome_unknown")
        assert unknown["lookup_in_s"] == "2.0"
        (filled,) = await daemon.wait_event("follower_order_filled")
        assert event_time(filled) - event_time(unknown) >= 2.0
        assert len((await paper.state("f1"))["orders"]) == 1  # 429'd orders are not executed: sent again once
        assert await daemon.stop() == 0


async def test_conditional_orders_placed_by_hand_are_cancelled_by_reconciliation_and_close_outs(
    tmp_path: Path,
) -> None:
    async with running_paper(paper_accounts("10000", {"f1": "1000", "f2": "1000"})) as paper:
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}, "f2": {"investment": 1000}})
        f1 = paper.client("f1")
        stop = {"stopPrice": 2500, "reduceOnly": True}
        await f1.create_order(ETH, "market", "buy", 0.1)
        await f1.create_order(ETH, "STOP_MARKET", "sell", 0.1, None, stop)
        daemon = await start_daemon(config, env)  # reconciliation at start
        await daemon.wait_event("reconcile_completed", count=2, timeout=WITHIN_THE_MINUTE_S)
        kinds = {e["kind"] for e in daemon.named("manual_intervention_detected") if e["follower"] == "f1"}
        assert "conditional_order" in kinds
        assert [a for a in (await paper.state("f1"))["algo_orders"] if a["algoStatus"] == "NEW"] == []
        await paper.client("lead").create_order(ETH, "market", "buy", 2)
        await wait_positions(paper, {"f2": {"ETHUSDT": D("0.2")}})
        await paper.client("f2").create_order(ETH, "STOP_MARKET", "sell", 0.2, None, stop)
        drop_follower(config, "f2")
        await hup(daemon)
        await daemon.wait_event("follower_ended")
        await wait_positions(paper, {"f2": {}})
        assert [a for a in (await paper.state("f2"))["algo_orders"] if a["algoStatus"] == "NEW"] == []
        assert await daemon.stop() == 0

"""Close-outs end flat, every time: rejected closes are tried again, old opens are never sent, a restart
resumes an unfinished close-out, and the stop loss is checked before anything is planned. `bot run` as a real
process against the paper exchange, except the last test, which drives one follower's mirror directly."""

from __future__ import annotations

import asyncio
import signal
from decimal import Decimal
from pathlib import Path

from bot import logs
from bot.core.model import LeadChange, PlanKind
from bot.engine.clock import SystemClock
from bot.engine.mirror import FollowerMirror, MirrorConfig
from bot.engine.prices import MarkPrices
from bot.settings import FollowerSettings
from bot.store.db import Store
from bot.venue.binance_compat import build_binanceusdm
from bot.venue.ccxt_venue import AccountVenue, market_rules
from tests.conftest import ETH
from tests.daemon_harness import (
    drop_follower,
    fault,
    follower_states,
    hup,
    paper_accounts,
    positions,
    start_daemon,
    wait_positions,
    write_config,
)
from tests.paper_harness import running_paper

D = Decimal
ORDER = "/fapi/v1/order"


async def test_a_rejected_stop_loss_close_is_tried_again_until_the_account_is_flat(tmp_path: Path) -> None:
    async with running_paper(paper_accounts("10000", {"f1": "1000"})) as paper:
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000, "total_stop_loss_pct": 30}})
        daemon = await start_daemon(config, env)
        await paper.client("lead").create_order(ETH, "market", "buy", 2)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.2")}})
        # fast markets answer market orders with PERCENT_PRICE (-4131), exactly when stop losses fire
        await fault(paper, path=ORDER, method="POST", account="f1", kind="reject", count=2)
        await paper.set_price("ETHUSDT", "1400")  # copy equity 680: below the 700 threshold
        await daemon.wait_event("follower_stop_loss_triggered")
        retry = (await daemon.wait_event("follower_close_retry"))[0]
        assert retry["remaining"] == {"ETHUSDT": "0.200"} and follower_states(tmp_path) == {"f1": "closing"}
        await daemon.wait_event("follower_stopped", timeout=30)
        assert await positions(paper, "f1") == {}
        assert follower_states(tmp_path) == {"f1": "stopped_loss"}
        assert len(daemon.named("follower_order_rejected")) == 2
        assert await daemon.stop() == 0


async def test_a_close_out_never_sends_an_open_left_unresolved(tmp_path: Path) -> None:
    async with running_paper(paper_accounts("10000", {"f1": "1000", "f2": "1000"})) as paper:
        followers = {"f1": {"investment": 1000}, "f2": {"investment": 1000}}
        config, env = write_config(tmp_path, paper.url, followers)
        daemon = await start_daemon(config, env)
        # f1's open is lost on the way (never executed) and its lookups fail: it stays unknown
        await fault(paper, path=ORDER, method="POST", account="f1", kind="drop", execute=False)
        await fault(paper, path=ORDER, method="GET", account="f1", kind="503", count=10_000)
        await paper.client("lead").create_order(ETH, "market", "buy", 2)
        await wait_positions(paper, {"f2": {"ETHUSDT": D("0.2")}})
        await daemon.wait_event("order_outcome_unknown")
        drop_follower(config, "f1")
        await hup(daemon)  # f1 removed: its close-out must abandon the open, not send it
        await paper.control("DELETE", "/faults")
        (ended,) = await daemon.wait_event("follower_ended", timeout=40)
        assert ended["follower"] == "f1"
        assert await positions(paper, "f1") == {}
        assert (await paper.state("f1"))["orders"] == []  # the open never reached the exchange
        assert follower_states(tmp_path)["f1"] == "ended"
        assert await daemon.stop() == 0


async def test_lead_gone_close_outs_that_fail_are_finished_after_a_restart(tmp_path: Path) -> None:
    async with running_paper(paper_accounts("10000", {"f1": "1000", "f2": "1000"})) as paper:
        config, env = write_config(tmp_path, paper.url, {"f1": {"investment": 1000}, "f2": {"investment": 1000}})
        daemon = await start_daemon(config, env)
        await paper.client("lead").create_order(ETH, "market", "buy", 2)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.2")}, "f2": {"ETHUSDT": D("0.2")}})
        await fault(paper, path=ORDER, method="POST", account="f1", kind="reject", count=10_000)
        text = config.read_text()
        config.write_text(text[: text.index("[lead]")] + text[text.index("[[followers]]") :])
        daemon.proc.send_signal(signal.SIGHUP)  # the lead removed: everyone is closed out
        await daemon.wait_event("lead_gone")
        await daemon.wait_event("follower_close_retry", count=2)  # f1 keeps trying, logged each round
        (ended,) = await daemon.wait_event("follower_ended")
        assert ended["follower"] == "f2" and await positions(paper, "f2") == {}
        assert follower_states(tmp_path) == {"f1": "closing", "f2": "ended"}
        assert await daemon.stop() == 0  # stopped while f1 is still closing
        await paper.control("DELETE", "/faults")
        restarted = await start_daemon(config, env, started=False)
        assert await asyncio.wait_for(restarted.proc.wait(), 40) == 0
        await restarted.stop()
        assert restarted.named("follower_ended")[0]["follower"] == "f1"  # the restart finished the close-out
        assert await positions(paper, "f1") == {}
        assert follower_states(tmp_path) == {"f1": "ended", "f2": "ended"}


async def test_the_stop_loss_is_checked_before_a_queued_lead_change_is_planned(tmp_path: Path) -> None:
    """A follower already at its threshold is closed, never copied to: no open for the waiting change."""
    async with running_paper(paper_accounts("10000", {"f1": "1000"})) as paper:
        logs.configure("json")
        clock = SystemClock()
        store = Store(tmp_path / "state.sqlite3")
        venue = AccountVenue("f1", build_binanceusdm(paper.url, "f1-key-000001", "f1-secret-000001"))
        try:
            markets = market_rules(await venue.load_markets())
            settings = FollowerSettings(
                name="f1", api_key_env="K", api_secret_env="S", investment=D(1000), total_stop_loss_pct=D(30)
            )
            # the check before a plan reads that plan's symbol fresh: the estimate sees the move at once
            config = MirrorConfig(D(5))
            mirror = FollowerMirror(
                settings, venue, store, markets, MarkPrices(venue, clock), clock, config, logs.get()
            )
            store.record_equity("lead", D(10000), clock.now_ms())
            store.register_waiting("f1", D(1000), "", clock.now_ms())
            assert await mirror.activate()
            changes = [("ETHUSDT", D(0), D(2), D(0), D(3000), D(3000))]
            store.record_lead_changes(changes, D(10000), clock.now_ms())
            await mirror.catch_up(asyncio.Event())
            assert await positions(paper, "f1") == {"ETHUSDT": D("0.2")}
            await paper.set_price("ETHUSDT", "1400")  # copy equity 680, while a lead increase waits
            more = [("ETHUSDT", D(2), D(4), D(3000), D(2200), None)]  # no fill price: no slippage guard either
            store.record_lead_changes(more, D(10000), clock.now_ms())
            await mirror.catch_up(asyncio.Event())
            orders = (await paper.state("f1"))["orders"]
            assert [o["side"] for o in orders] == ["BUY"]  # the increase was never sent
            assert store.follower("f1").state in ("closing", "stopped_loss")  # type: ignore[union-attr]
            assert not store.has_plan("f1", PlanKind.COPY, 2)
        finally:
            await venue.close()
            store.close()


def test_no_open_is_ever_planned_on_copy_equity_at_or_below_zero() -> None:
    from bot.core.model import FollowerView, Market
    from bot.core.sync import plan_change

    market = Market("ETHUSDT", D("0.001"), D("0.001"), D(5))
    for equity in (D(-500), D(0)):  # -500 once planned a sell of 0.1 while the lead bought
        follower = FollowerView("f1", equity, {}, D(5), D("0.5"))
        plan = plan_change(
            LeadChange(1, "ETHUSDT", D(0), D(2), D(3000)), D(10000), follower, market, {"ETHUSDT": D(3000)}
        )
        assert plan.intents == () and plan.skips[0].event == "sync_skipped_no_equity"

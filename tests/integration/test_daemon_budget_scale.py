"""100 followers, a lead change every second for a minute, against the paper exchange enforcing Binance's
default limits (2,400 weight a minute per IP): every change copied exactly once, never a 429 or a 418, and the
IP's weight (the exchange's own count) at or below half the limit in every minute (SPEC 12)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

from tests.conftest import ETH
from tests.daemon_harness import paper_accounts, positions, start_daemon, wait_positions, write_config
from tests.paper_harness import running_paper

D = Decimal
FOLLOWERS = 100
CHANGES = 60
LADDER = [2, 2, 2, -2, -2, -2]  # the lead's ETH: 0, 2, 4, 6, 4, 2, 0, 2, ... (a follower's 0.010 ETH a step)


async def test_a_hundred_followers_and_a_change_a_second_stay_within_half_the_ip_limit(tmp_path: Path) -> None:
    names = [f"f{i:03d}" for i in range(FOLLOWERS)]
    accounts = paper_accounts("200000", {n: "1000" for n in names})  # r = 1,000 / 200,000
    async with running_paper(accounts) as paper:
        await paper.control("POST", "/limits", {"enabled": True})  # Binance's defaults: 2,400 a minute
        followers = {n: {"investment": 1000} for n in names}
        config, env = write_config(tmp_path, paper.url, followers, bot={"lead_source": "stream"})
        daemon = await start_daemon(config, env, started=False)
        await daemon.wait_event("daemon_started", timeout=240)  # 100 activations (an account read each), paced
        assert len(daemon.named("follower_activated")) == FOLLOWERS
        await daemon.wait_event("stream_connected")
        lead = paper.client("lead")
        held = 0
        start = time.monotonic()
        for i in range(CHANGES):
            step = LADDER[i % len(LADDER)]
            await lead.create_order(ETH, "market", "buy" if step > 0 else "sell", abs(step))
            held += step
            await asyncio.sleep(max(0.0, start + i + 1 - time.monotonic()))  # one a second, on the second
        want = D(held) * D("0.005")
        await wait_positions(paper, {n: ({"ETHUSDT": want} if want else {}) for n in names}, timeout=120)
        detected = len(daemon.named("lead_position_changed"))
        assert detected == CHANGES  # the stream woke a read for every one
        for name in names[:: FOLLOWERS // 10]:
            orders = (await paper.state(name))["orders"]
            assert len(orders) == CHANGES and {o["origQty"] for o in orders} == {"0.010"}
            assert len({o["clientOrderId"] for o in orders}) == CHANGES
        sent = 0
        for name in names:
            sent += len((await paper.state(name))["orders"])
        assert sent == FOLLOWERS * CHANGES  # every change copied once to every follower, none twice
        usage = (await paper.control("GET", "/limits"))["ips"]["127.0.0.1"]
        assert usage["rejected_429"] == 0 and usage["rejected_418"] == 0 and usage["bans"] == 0
        assert max(usage["minutes"].values()) <= 1200, usage["minutes"]
        assert await positions(paper, names[-1]) == ({"ETHUSDT": want} if want else {})
        assert await daemon.stop() == 0

"""The daemon inside the exchange's per-IP request budget (SPEC 12), with the paper exchange enforcing a shrunk
limit: it paces itself instead of breaking it, backs off after a 429 (one `rate_limited` per episode, nothing
sent before Retry-After, so never a 418), and loses or doubles nothing on the way."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from tests.conftest import ETH
from tests.daemon_harness import (
    client_ids_are_unique,
    eventually,
    fault,
    paper_accounts,
    start_daemon,
    wait_positions,
    write_config,
)
from tests.paper_harness import running_paper

D = Decimal
LIMIT = 1200  # the daemon may use 600 a minute: a fifth of what its 0.2 s polls would take


async def test_a_shrunk_limit_makes_the_daemon_wait_and_back_off_without_losing_anything(tmp_path: Path) -> None:
    accounts = paper_accounts("10000", {"f1": "1000", "f2": "1000"})
    accounts["limits"] = {"enabled": True, "request_weight_per_minute": LIMIT}
    async with running_paper(accounts) as paper:
        followers = {"f1": {"investment": 1000}, "f2": {"investment": 1000}}
        config, env = write_config(tmp_path, paper.url, followers)  # polls every 0.2 s: 3,000+ weight a minute
        daemon = await start_daemon(config, env)
        (paced,) = daemon.named("reconcile_interval_effective")
        assert paced["allowance_per_minute"] == "600"  # half of the limit the exchange advertises
        lead = paper.client("lead")
        await lead.create_order(ETH, "market", "buy", 2)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.2")}, "f2": {"ETHUSDT": D("0.2")}}, 30)
        # the exchange answers the lead's next account read with a 429: every request waits out its Retry-After
        await fault(paper, path="/fapi/v3/account", method="GET", account="lead", kind="429", retry_after=3)
        (limited,) = await daemon.wait_event("rate_limited", timeout=30)
        assert limited["status"] == "429" and limited["wait_s"] == "3.0"

        async def backed_off() -> bool:  # the test is a tool on the same IP: it waits out the back-off too
            return not (await paper.control("GET", "/limits"))["ips"]["127.0.0.1"]["in_backoff"]

        await eventually(backed_off, 10, "the end of the back-off")
        await lead.create_order(ETH, "market", "buy", 1)
        await wait_positions(paper, {"f1": {"ETHUSDT": D("0.3")}, "f2": {"ETHUSDT": D("0.3")}}, 30)
        await lead.create_order(ETH, "market", "sell", 3)
        await wait_positions(paper, {"f1": {}, "f2": {}}, 30)
        usage = (await paper.control("GET", "/limits"))["ips"]["127.0.0.1"]
        assert usage["bans"] == 0 and usage["rejected_418"] == 0  # nothing was sent during the back-off
        assert all(weight <= LIMIT // 2 for weight in usage["minutes"].values())  # its share: half the limit
        assert len(daemon.named("rate_limited")) == 1
        assert await daemon.stop() == 0
        for name in ("f1", "f2"):
            assert await client_ids_are_unique(paper, name) == 3  # each change copied once

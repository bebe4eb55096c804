"""The venue's income paging against the paper exchange with real ccxt: records sharing a millisecond across a
page boundary are neither lost nor counted twice."""

from __future__ import annotations

from decimal import Decimal

from bot.venue.ccxt_venue import AccountVenue
from tests.conftest import BTC, ETH, SOL
from tests.paper_harness import Paper


async def test_income_pages_keep_every_record_that_shares_a_millisecond(paper: Paper) -> None:
    alice = paper.client("alice")
    for symbol, qty in ((BTC, 0.002), (ETH, 0.05), (SOL, 1)):
        await alice.create_order(symbol, "market", "buy", qty)
    # each funding event books one record per position, all in one millisecond: 3 x 334 = 1,002 records,
    # so the first page of 1,000 ends inside a millisecond's group
    for _ in range(334):
        await paper.control("POST", "/funding", {"rate": "0.0001"})
    venue = AccountVenue("alice", paper.client("alice"))
    records = (await venue.income(["FUNDING_FEE"], 0, 2**42))["FUNDING_FEE"]
    state = await paper.state("alice")
    funding = [i for i in state["income"] if i["incomeType"] == "FUNDING_FEE"]
    assert len(funding) == 1002
    assert len(records) == 1002
    assert sum((a for _, a in records), Decimal(0)) == sum((Decimal(i["income"]) for i in funding), Decimal(0))
    # several types in one listing of every type (one weight-30 request a page instead of one per type)
    both = await venue.income(["COMMISSION", "FUNDING_FEE"], 0, 2**42)
    assert sorted(both["FUNDING_FEE"]) == sorted(records)
    assert len(both["COMMISSION"]) == 3  # the three opening trades; other types (the deposit) are left out

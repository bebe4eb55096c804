"""The spot venue against the paper exchange's Binance spot, through real ccxt: what the engine reads and sends."""

from __future__ import annotations

from decimal import Decimal

import ccxt
import structlog

from bot.venue.budget import RequestBudget
from bot.venue.ccxt_venue import host_of
from bot.venue.spot_venue import SpotVenue, spot_market_rules
from tests.paper_harness import Paper

D = Decimal


async def venue(paper: Paper, name: str, budget: RequestBudget | None = None) -> SpotVenue:
    spot = SpotVenue(name, paper.spot_client(name), budget=budget)
    await spot.load_markets()
    return spot


async def test_rules_balances_holdings_and_prices(paper: Paper) -> None:
    bob = await venue(paper, "bob")
    rules, pairs = spot_market_rules(bob.client.markets)
    assert (rules["BTCUSDT"].step, rules["BTCUSDT"].min_qty, rules["BTCUSDT"].min_notional) == (
        D("0.00001"),
        D("0.00001"),
        D(5),
    )
    assert (pairs["SOLUSDT"].base, pairs["SOLUSDT"].quote) == ("SOL", "USDT")
    balances = await bob.balances()
    assert balances == {"BTC": (D("0.5"), D(0)), "USDT": (D(10000), D(0))}
    assert bob.holdings(balances) == {"BTCUSDT": D("0.5")}
    assert (await bob.last_prices())["ETHUSDT"] == D(3000)
    assert await bob.last_price("SOLUSDT") == D(150)
    assert await bob.taker_rate("BTCUSDT") == D("0.001")


async def test_a_buy_reports_its_fee_in_the_asset_bought_and_a_lookup_finds_it_again(paper: Paper) -> None:
    alice = await venue(paper, "alice")
    bought = await alice.place("BTCUSDT", "buy", D("0.00199"), False, "cb-test-1")
    assert (bought.status, bought.filled, bought.average) == ("closed", D("0.00199"), D(50000))
    assert (bought.fee_base, bought.fee_quote) == (D("0.00000199"), D(0))
    sold = await alice.place("BTCUSDT", "sell", D("0.00149"), False, "cb-test-2")
    assert (sold.fee_base, sold.fee_quote) == (D(0), D("0.0745"))
    found = await alice.lookup("BTCUSDT", "cb-test-1")
    assert found is not None and (found.order_id, found.filled, found.fee_base) == (
        bought.order_id,
        D("0.00199"),
        D("0.00000199"),
    )
    assert await alice.lookup("BTCUSDT", "cb-never-sent") is None
    fills = await alice.trades("BTCUSDT", 0, 2**41)
    assert [(f.side, f.qty, f.fee_asset) for f in fills] == [
        ("buy", D("0.00199"), "BTC"),
        ("sell", D("0.00149"), "USDT"),
    ]
    income = await alice.income(["COMMISSION", "FUNDING_FEE"], 0, 2**41)
    assert sorted(a for _, a in income["COMMISSION"]) == [D("-0.0995"), D("-0.0745")]  # the BTC fee at 50,000
    assert income["FUNDING_FEE"] == []


async def test_open_orders_cancel_and_transfer_between_spot_wallets(paper: Paper) -> None:
    bob = await venue(paper, "bob")
    await bob.client.create_order("BTC/USDT", "limit", "sell", 0.1, 60000, {"timeInForce": "GTC"})
    (row,) = await bob.open_orders("BTCUSDT")
    assert row[0] == "BTCUSDT"
    await bob.cancel("BTCUSDT", row[1])
    await bob.cancel("BTCUSDT", row[1])  # already gone: not an error
    assert await bob.open_orders() == []
    master = SpotVenue("master", paper.spot_client("master"))
    tran = await master.universal_transfer("st-1", "bob@paper.local", "alice@paper.local", D("10.5"))
    assert tran
    assert (await (await venue(paper, "alice")).balances())["USDT"] == (D("1010.5"), D(0))


async def test_spot_reads_count_spot_weights_on_the_budget(paper: Paper) -> None:
    budget = RequestBudget(host_of(paper.spot_client("alice")), 2400, 0.5, structlog.get_logger())
    alice = await venue(paper, "alice", budget)
    assert budget.limit == 6000  # from spot's exchangeInfo
    before = budget.used()
    await alice.balances()
    assert budget.used() - before == 20
    assert host_of(ccxt.binance()) == "api.binance.com" and host_of(ccxt.binanceusdm()) == "fapi.binance.com"

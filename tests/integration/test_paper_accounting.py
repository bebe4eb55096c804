"""PnL, fees and balances add up to the cent after opens, a partial close, a flip and a full close."""

from __future__ import annotations

from decimal import Decimal

from tests.conftest import ETH
from tests.paper_harness import Paper

D = Decimal


async def test_open_add_partial_close_flip_and_close_add_up_exactly(paper: Paper) -> None:
    ex = paper.client("alice")  # 1,000 USDT, taker 0.05 %
    # 1. buy 0.1 at 3,000: fee 0.15
    await ex.create_order(ETH, "market", "buy", 0.1)
    # 2. buy 0.1 at 3,100: fee 0.155, entry (300 + 310) / 0.2 = 3,050
    await paper.set_price("ETHUSDT", "3100")
    await ex.create_order(ETH, "market", "buy", 0.1)
    (position,) = await ex.fetch_positions()
    assert position["entryPrice"] == 3050 and position["contracts"] == 0.2
    # 3. sell 0.05 at 3,200: realized 0.05 * 150 = 7.5, fee 0.08
    await paper.set_price("ETHUSDT", "3200")
    await ex.create_order(ETH, "market", "sell", 0.05)
    # 4. sell 0.35 at 2,900 (flip): realized 0.15 * -150 = -22.5, fee 0.5075; short 0.2 at 2,900
    await paper.set_price("ETHUSDT", "2900")
    await ex.create_order(ETH, "market", "sell", 0.35)
    (position,) = await ex.fetch_positions()
    assert position["side"] == "short" and position["contracts"] == 0.2 and position["entryPrice"] == 2900
    # 5. mark 2,800: the short gains 20 unrealized
    await paper.set_price("ETHUSDT", "2800")
    info = (await ex.fetch_balance())["info"]
    assert D(info["totalWalletBalance"]) == D("984.1075")  # 1000 - 0.15 - 0.155 + 7.5 - 0.08 - 22.5 - 0.5075
    assert D(info["totalUnrealizedProfit"]) == D("20")
    assert D(info["totalMarginBalance"]) == D("1004.1075")
    # 6. buy 0.2 at 2,800 closes: realized 20, fee 0.28
    await ex.create_order(ETH, "market", "buy", 0.2)
    assert await ex.fetch_positions() == []
    info = (await ex.fetch_balance())["info"]
    assert D(info["totalWalletBalance"]) == D("1003.8275")
    assert D(info["totalMarginBalance"]) == D("1003.8275") and D(info["totalUnrealizedProfit"]) == 0

    trades = await ex.fetch_my_trades(ETH)
    realized = [D(t["info"]["realizedPnl"]) for t in trades]
    fees = [D(t["info"]["commission"]) for t in trades]
    assert realized == [D(0), D(0), D("7.5"), D("-22.5"), D("20")]
    assert fees == [D("0.15"), D("0.155"), D("0.08"), D("0.5075"), D("0.28")]

    income = await ex.fapiPrivateGetIncome({"symbol": "ETHUSDT"})
    by_kind: dict[str, Decimal] = {}
    for row in income:
        by_kind[row["incomeType"]] = by_kind.get(row["incomeType"], D(0)) + D(row["income"])
    assert by_kind == {"REALIZED_PNL": D("5"), "COMMISSION": D("-1.1725")}
    assert D(1000) + sum(by_kind.values()) == D("1003.8275")


async def test_margin_is_checked_against_available_balance(paper: Paper) -> None:
    ex = paper.client("alice")
    await ex.set_leverage(2, ETH)
    await ex.create_order(ETH, "market", "buy", 0.6)  # 1,800 notional, 900 initial margin
    info = (await ex.fetch_balance())["info"]
    assert D(info["totalInitialMargin"]) == D("900")
    assert D(info["availableBalance"]) == D("99.1")  # 1000 - 0.9 fee - 900
    position = (await ex.fetch_positions())[0]
    assert position["initialMargin"] == 900

"""Market definitions for the paper exchange: filters and leverage brackets like Binance USDⓈ-M."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

D = Decimal


@dataclass(frozen=True, slots=True)
class Bracket:
    """One notional tier: up to `cap` notional, at most `initial_leverage`, maintenance ratio `mmr`."""

    number: int
    initial_leverage: int
    floor: Decimal
    cap: Decimal
    mmr: Decimal
    cum: Decimal


@dataclass(frozen=True, slots=True)
class MarketSpec:
    symbol: str
    base: str
    tick_size: Decimal
    min_price: Decimal
    max_price: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_max_qty: Decimal
    min_notional: Decimal
    price_precision: int
    quantity_precision: int
    brackets: tuple[Bracket, ...]
    onboard_ms: int = 1569398400000

    @property
    def max_leverage(self) -> int:
        return self.brackets[0].initial_leverage

    def bracket_for(self, notional: Decimal) -> Bracket:
        for bracket in self.brackets:
            if notional < bracket.cap:
                return bracket
        return self.brackets[-1]


def _brackets(tiers: list[tuple[int, str, str]]) -> tuple[Bracket, ...]:
    """Builds brackets from (leverage, floor, mmr) rows; caps and cumulative amounts follow."""
    out: list[Bracket] = []
    cum = D(0)
    prev_mmr = D(0)
    for i, (lev, floor, mmr) in enumerate(tiers):
        cap = D(tiers[i + 1][1]) if i + 1 < len(tiers) else D(floor) * 2
        cum += D(floor) * (D(mmr) - prev_mmr)
        out.append(Bracket(i + 1, lev, D(floor), cap, D(mmr), cum))
        prev_mmr = D(mmr)
    return tuple(out)


BTC_BRACKETS = _brackets(
    [
        (125, "0", "0.004"),
        (100, "50000", "0.005"),
        (50, "250000", "0.01"),
        (20, "3000000", "0.025"),
        (10, "20000000", "0.05"),
        (5, "40000000", "0.1"),
        (4, "100000000", "0.125"),
        (3, "120000000", "0.15"),
        (2, "200000000", "0.25"),
        (1, "300000000", "0.5"),
    ]
)
ETH_BRACKETS = _brackets(
    [
        (100, "0", "0.005"),
        (75, "100000", "0.0065"),
        (50, "250000", "0.01"),
        (25, "2000000", "0.02"),
        (10, "15000000", "0.05"),
        (5, "30000000", "0.1"),
        (4, "60000000", "0.125"),
        (3, "80000000", "0.15"),
        (2, "100000000", "0.25"),
        (1, "150000000", "0.5"),
    ]
)
ALT_BRACKETS = _brackets(
    [
        (75, "0", "0.0065"),
        (50, "10000", "0.01"),
        (25, "100000", "0.02"),
        (20, "1000000", "0.025"),
        (10, "5000000", "0.05"),
        (5, "10000000", "0.1"),
        (4, "15000000", "0.125"),
        (2, "25000000", "0.25"),
        (1, "50000000", "0.5"),
    ]
)

DEFAULT_MARKETS: tuple[MarketSpec, ...] = (
    MarketSpec(
        symbol="BTCUSDT",
        base="BTC",
        tick_size=D("0.10"),
        min_price=D("556.80"),
        max_price=D("4529764"),
        step_size=D("0.001"),
        min_qty=D("0.001"),
        max_qty=D("1000"),
        market_max_qty=D("120"),
        min_notional=D("100"),
        price_precision=2,
        quantity_precision=3,
        brackets=BTC_BRACKETS,
    ),
    MarketSpec(
        symbol="ETHUSDT",
        base="ETH",
        tick_size=D("0.01"),
        min_price=D("39.86"),
        max_price=D("306177"),
        step_size=D("0.001"),
        min_qty=D("0.001"),
        max_qty=D("10000"),
        market_max_qty=D("2000"),
        min_notional=D("20"),
        price_precision=2,
        quantity_precision=3,
        brackets=ETH_BRACKETS,
        onboard_ms=1569398400000,
    ),
    MarketSpec(
        symbol="SOLUSDT",
        base="SOL",
        tick_size=D("0.0100"),
        min_price=D("0.4200"),
        max_price=D("6857"),
        step_size=D("1"),
        min_qty=D("1"),
        max_qty=D("1000000"),
        market_max_qty=D("5000"),
        min_notional=D("5"),
        price_precision=4,
        quantity_precision=0,
        brackets=ALT_BRACKETS,
        onboard_ms=1600308000000,
    ),
)


@dataclass(frozen=True, slots=True)
class SpotMarketSpec:
    """A spot market's filters, as Binance spot's exchangeInfo sends them (PRICE_FILTER, LOT_SIZE, NOTIONAL)."""

    symbol: str
    base: str
    quote: str
    tick_size: Decimal
    min_price: Decimal
    max_price: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_max_qty: Decimal
    min_notional: Decimal
    max_notional: Decimal = Decimal(9_000_000)


# Binance spot's filters for these pairs (BTC and ETH as in the captured exchangeInfo)
SPOT_MARKETS: tuple[SpotMarketSpec, ...] = (
    SpotMarketSpec(
        "BTCUSDT",
        "BTC",
        "USDT",
        D("0.01"),
        D("0.01"),
        D("1000000"),
        D("0.00001"),
        D("0.00001"),
        D("9000"),
        D("120"),
        D("5"),
    ),
    SpotMarketSpec(
        "ETHUSDT",
        "ETH",
        "USDT",
        D("0.01"),
        D("0.01"),
        D("1000000"),
        D("0.0001"),
        D("0.0001"),
        D("9000"),
        D("2000"),
        D("5"),
    ),
    SpotMarketSpec(
        "SOLUSDT",
        "SOL",
        "USDT",
        D("0.01"),
        D("0.01"),
        D("1000000"),
        D("0.001"),
        D("0.001"),
        D("90000"),
        D("20000"),
        D("5"),
    ),
)


def synthetic_markets(count: int) -> tuple[MarketSpec, ...]:
    """Extra markets (`X001USDT`, ...) so that memory and load figures see a realistic market count."""
    return tuple(
        MarketSpec(
            symbol=f"X{i:03d}USDT",
            base=f"X{i:03d}",
            tick_size=D("0.0001"),
            min_price=D("0.0001"),
            max_price=D("100000"),
            step_size=D("1"),
            min_qty=D("1"),
            max_qty=D("10000000"),
            market_max_qty=D("1000000"),
            min_notional=D("5"),
            price_precision=4,
            quantity_precision=0,
            brackets=ALT_BRACKETS,
        )
        for i in range(1, count + 1)
    )


def decimals_of(value: Decimal) -> int:
    """Number of digits after the point that `value` really uses (trailing zeros ignored)."""
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)

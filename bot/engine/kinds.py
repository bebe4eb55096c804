"""The market type a daemon copies (`bot.market`, SPEC 11), chosen once at start: its venue, rules, mirror,
lead poller, lead stream and settlement equity. Everything else in the engine is shared."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bot.core.model import Market
from bot.core.spot import spot_copy_equity
from bot.engine.lead import LeadPoller
from bot.engine.mirror import FollowerMirror
from bot.engine.spot import SpotLeadPoller, SpotMirror
from bot.store.db import Store
from bot.venue.budget import Priority
from bot.venue.ccxt_venue import AccountVenue, market_rules
from bot.venue.spot_venue import SpotVenue, spot_market_rules


@dataclass(frozen=True, slots=True)
class MarketKind:
    name: str
    venue: type[AccountVenue]
    mirror: type[FollowerMirror]
    poller: type[LeadPoller]
    rules: Callable[[dict[str, Any]], dict[str, Market]]
    mark_stream: bool  # a public mark-price stream feeds the prices (futures); else REST at a bounded rate
    lead_watch: str  # the ccxt.pro watch that wakes the lead poller with `lead_source = "stream"`
    settlement_equity: Callable[[AccountVenue, Store, str], Awaitable[Decimal]]
    # a follower's reconciliation pass: its account read, then open orders per watched market (futures: open
    # and conditional orders, 1 each; spot: 6 each)
    reconcile_weight: tuple[int, int]
    # futures: a fill's fee is estimated at a commission rate until the account's next read (each follower's
    # own rate is read once, in the background); spot: every fill's fee comes with its answer, no rate is read
    assumes_fee_rate: bool


async def _account_equity(venue: AccountVenue, store: Store, name: str) -> Decimal:
    return await venue.equity()


async def _spot_copy_account_equity(venue: AccountVenue, store: Store, name: str) -> Decimal:
    """A spot follower's USDT plus its copy holdings at their last prices: the reserve's assets are left out
    (their price moves are not copy PnL); less the USDT reserve, it is the copy equity."""
    assert isinstance(venue, SpotVenue)
    prices = await venue.last_prices(Priority.SETTLEMENT)
    account = await venue.account(Priority.SETTLEMENT, prices)
    return account.cash + spot_copy_equity(Decimal(0), store.follower_positions(name), prices)


FUTURES = MarketKind(
    "futures",
    AccountVenue,
    FollowerMirror,
    LeadPoller,
    market_rules,
    True,
    "watch_positions",
    _account_equity,
    (5, 2),
    True,
)
SPOT = MarketKind(
    "spot",
    SpotVenue,
    SpotMirror,
    SpotLeadPoller,
    lambda markets: spot_market_rules(markets)[0],
    False,
    "watch_balance",
    _spot_copy_account_equity,
    (20, 6),
    False,
)
KINDS = {kind.name: kind for kind in (FUTURES, SPOT)}

"""What start-up asks of the accounts before anything trades: markets loaded once (and shared), every account
answering, and the fee rate assumed for followers' fills until each one's own is read."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bot.venue.ccxt_venue import AccountVenue
from bot.venue.errors import VenueError


@dataclass(frozen=True, slots=True)
class Started:
    markets: dict[str, Any]
    market_source: AccountVenue  # whose markets the others share (and the streams take)
    rate_market: str  # the market commission rates are read in
    taker_rate: Decimal  # the first account's (the lead's): assumed for followers' fills until their own is read


async def check_accounts(
    venues: Sequence[AccountVenue], running: Collection[str], assumes_fee_rate: bool, log: Any
) -> Started | None:
    """Loads markets once (from the first of `venues`), then makes sure every account answers; None if any does
    not. A follower already active in the state (`running`) is not checked here: a restart of 500 of them would
    wait ~20 s for their paced checks before copying anything; its first reconciliation pass reads its account,
    and a key that fails from then on fails that follower alone (`follower_account_failed`), as one that stops
    working later does. `assumes_fee_rate`: futures fills are estimated at an assumed rate (read here, from the
    first account); spot fills carry their fees."""
    first = venues[0]
    started: Started | None = None
    failed = False
    for venue in venues:
        try:
            markets = await venue.load_markets(first if venue is not first else None)
            if venue is first:
                market_id = str(min(m["id"] for m in markets.values()))
                rate = Decimal(0)
                if assumes_fee_rate:
                    rate = await venue.taker_rate(market_id)
                else:
                    await venue.check_access(market_id)  # the key answers; fees come with each fill
                started = Started(markets, first, market_id, rate)
            elif venue.name not in running and started is not None:
                await venue.check_access(started.rate_market)  # weight 1, not an account read (5) per follower
        except VenueError as exc:
            log.error("startup_account_unreachable", account=venue.name, error=str(exc))
            failed = True
            if venue is first:
                break
    return None if failed else started

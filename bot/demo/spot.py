"""`bot demo --market spot`: the futures demo's story on Binance spot (SPEC 11). A lead rebalances between USDT,
BTC, ETH and SOL; alice copies, carol is small (some buys fall below the minimum), bob has a tight total stop loss
that a price fall hits; short settlement cycles; then `bot status`'s table with holdings and dust.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

from bot.core.model import FollowerState
from bot.demo.futures import Story, demo_accounts, demo_settings, play, until_next_cycle
from bot.engine.runtime import Runtime
from bot.paper.server import PaperExchange
from bot.settings import BotSettings, FollowerSettings, Settings
from bot.venue.binance_compat import build_binance_spot

FOLLOWERS = (("alice", "5000"), ("bob", "1500"), ("carol", "150"))
STOP_LOSS_PCT = {"bob": Decimal(3)}
LEAD_USDT = "20000"
ASSETS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")


def _accounts() -> dict[str, Any]:
    return demo_accounts([("lead", LEAD_USDT), *FOLLOWERS], spot=True)


def spot_settings(url: str, state_dir: Path, cycle_seconds: int) -> Settings:
    base = demo_settings(url, state_dir, cycle_seconds)
    followers = tuple(
        FollowerSettings(
            **{**f.model_dump(exclude={"investment", "total_stop_loss_pct", "exchange"}), "exchange": "binance"},
            investment=Decimal(usdt),
            total_stop_loss_pct=STOP_LOSS_PCT.get(f.name, Decimal(30)),
        )
        for f, (_, usdt) in zip(base.followers, FOLLOWERS, strict=False)
    )
    spot = {"exchange": "binance"}
    assert base.lead is not None and base.treasury is not None
    return base.model_copy(
        update={
            "bot": BotSettings(**{**base.bot.model_dump(), "market": "spot"}),
            "lead": base.lead.model_copy(update=spot),
            "treasury": base.treasury.model_copy(update=spot),
            "followers": followers,
        }
    )


async def rebalancing_lead(client: Any, seed: int, stop: asyncio.Event, say: Any) -> None:
    """A seeded strategy: buys with a part of its USDT, trims or sells out a holding, every couple of seconds."""
    rng = random.Random(seed)
    await client.load_markets()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=rng.uniform(1.5, 3.0))
        if stop.is_set():
            return
        balance = await client.fetch_balance()
        usdt = Decimal(str(balance["free"].get("USDT", 0)))
        held = {s: Decimal(str(balance["total"].get(s.split("/")[0], 0))) for s in ASSETS}
        owned = [s for s, q in held.items() if _on_step(client, s, q) > 0]  # the lead's own dust is not owned
        symbol = rng.choice(ASSETS)
        if owned and (usdt < 3000 or rng.random() < 0.4):
            symbol = rng.choice(owned)
            fraction = Decimal(1) if rng.random() < 0.3 else Decimal(str(round(rng.uniform(0.3, 0.6), 2)))
            qty = _on_step(client, symbol, held[symbol] * fraction)
            action, side = ("sell out" if fraction == 1 else f"sell {fraction:.0%}"), "sell"
        else:
            spend = usdt * Decimal(str(round(rng.uniform(0.1, 0.25), 2)))
            price = Decimal(str((await client.fetch_ticker(symbol))["last"]))
            qty = _on_step(client, symbol, spend / price)
            action, side = f"buy {spend:.0f} USDT of", "buy"
        if qty <= 0:
            continue
        order = await client.create_order(symbol, "market", side, float(qty))
        say(f"lead {action} {symbol.split('/')[0]}: {side} {qty} at {order['average']}")


def _on_step(client: Any, symbol: str, qty: Decimal) -> Decimal:
    """`qty` truncated to the market's step (ccxt's amount_to_precision refuses what truncates to nothing)."""
    step = Decimal(str(client.markets[symbol]["precision"]["amount"]))
    return (qty / step).to_integral_value(rounding=ROUND_DOWN) * step


def _bob_values(exchange: PaperExchange) -> dict[str, Decimal]:
    """bob's holdings by market, valued at the last price (his stop loss is the one the fall must cross)."""
    wallet = exchange.ledger.accounts["bob"].spot
    return {
        market_id: wallet.balance(spec.base).total * exchange.ledger.prices[market_id].last
        for market_id, spec in exchange.spot.markets.items()
    }


async def price_fall(exchange: PaperExchange, runtime: Runtime, say: Any) -> str:
    """A fall of the price bob holds the most of, once he holds something, big enough to cross his stop loss;
    then waits (bounded) until bob is stopped: the demo shows it on a slow machine too. Returns the market."""
    deadline = time.monotonic() + 20
    values = _bob_values(exchange)
    while time.monotonic() < deadline and not any(values.values()):
        await asyncio.sleep(0.2)
        values = _bob_values(exchange)
    market_id = max(values, key=lambda m: values[m])
    threshold = Decimal(FOLLOWERS[1][1]) * STOP_LOSS_PCT["bob"] / 100
    pct = max(Decimal(15), min(Decimal(60), 200 * threshold / values[market_id])) if values[market_id] else Decimal(15)
    await move_price(exchange, market_id, -pct.quantize(Decimal(1)), "price fall", say)
    while time.monotonic() < deadline + 20:
        row = runtime.settler.store.follower("bob") if hasattr(runtime, "settler") else None
        if row is not None and row.state in (FollowerState.CLOSING, FollowerState.STOPPED_LOSS):
            break
        await asyncio.sleep(0.2)
    return market_id


async def move_price(exchange: PaperExchange, market_id: str, pct: Decimal, what: str, say: Any) -> None:
    last = exchange.ledger.prices[market_id].last
    tick = exchange.spot.markets[market_id].tick_size
    exchange.ledger.set_price(market_id, (last * (1 + pct / 100) / tick).to_integral_value() * tick)
    say(f"{what}: {market_id} {last} -> {exchange.ledger.prices[market_id].last}")


async def _spot_plot(
    exchange: PaperExchange, lead: Any, runtime: Runtime, say: Any, seconds: float, cycle_seconds: int
) -> None:
    await asyncio.sleep(seconds * 0.45)
    fallen = await price_fall(exchange, runtime, say)  # everyone loses; bob's 3 % stop hits
    await until_next_cycle(cycle_seconds, 0.5)
    await move_price(exchange, fallen, Decimal(10), "rebound", say)  # a winning cycle: profit is shared


SPOT_STORY = Story(
    "paper exchange (Binance spot)",
    _accounts(),
    spot_settings,
    lambda url: build_binance_spot(url, "demo-lead-key", "demo-lead-secret"),
    rebalancing_lead,
    _spot_plot,
    (
        "holding is the follower's copy holding (its own fills, net of the fee Binance takes in the asset bought);",
        "lead_x_r the lead's holding scaled by the copy-equity ratio; dust is what the exchange's minimums leave",
        "after the lead sold out. bob's 3 % total stop loss met the price fall: his copy holdings were sold.",
    ),
)


async def run_spot_demo(seconds: float, state_dir: Path, seed: int) -> int:
    return await play(SPOT_STORY, seconds, state_dir, seed)

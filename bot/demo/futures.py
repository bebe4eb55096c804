"""`bot demo`: the paper exchange in-process, a scripted lead, three followers, then a table of the result.

No keys and no network: every account lives on the paper exchange on a free loopback port.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bot import logs
from bot.core.cycles import short_cycle_of
from bot.core.model import FollowerState
from bot.engine.runtime import Runtime
from bot.paper.server import PaperConfig, PaperExchange
from bot.reports.status import follower_rows, lead_line, table
from bot.settings import (
    AccountSettings,
    BotSettings,
    Credentials,
    FollowerSettings,
    ProtectionSettings,
    Settings,
    SettlementSettings,
)
from bot.store.state_dir import DB_FILE, db_path, open_state
from bot.venue.binance_compat import build_binanceusdm

# carol is small: some opens fall below the minimums; bob has a tight stop loss that a price shock hits;
# dave is large: he waits for capacity until the lead's equity grows (capacity = lead equity / 0.20)
FOLLOWERS = (("alice", "5000"), ("bob", "1500"), ("carol", "120"), ("dave", "90000"))
STOP_LOSS_PCT = {"bob": Decimal("1.5")}
LEAD_USDT = "20000"
SYMBOLS = {"BTC/USDT:USDT": Decimal("0.001"), "ETH/USDT:USDT": Decimal("0.01"), "SOL/USDT:USDT": Decimal("1")}


def demo_accounts(names: Sequence[tuple[str, str]], spot: bool = False) -> dict[str, Any]:
    """The demo's accounts file: each account with its USDT (in its futures wallet, or its spot wallet)."""
    wallet = (lambda usdt: {"spot": {"USDT": usdt}}) if spot else (lambda usdt: {"usdt": usdt})
    limits: dict[str, Any] = {"request_weight_per_minute": 24000}
    if spot:
        limits["spot"] = {"request_weight_per_minute": 60000}
    return {
        "accounts": [
            {
                "name": n,
                "api_key": f"demo-{n}-key",
                "api_secret": f"demo-{n}-secret",
                "email": f"{n}@paper.local",
                **wallet(usdt),
            }
            for n, usdt in names
        ],
        "master": {"api_key": "demo-master-key", "api_secret": "demo-master-secret", "email": "master@paper.local"},
        "prices": {"BTCUSDT": "50000", "ETHUSDT": "3000", "SOLUSDT": "150"},
        # Binance's limits, the per-IP weight tenfold (spot's too): the demo's settlement cycles of a few seconds
        # stand in for weeks, and a week's settlement reads fit the real budget with days to spare
        "limits": limits,
    }


def _accounts() -> dict[str, Any]:
    return demo_accounts([("lead", LEAD_USDT), *FOLLOWERS])


def cycle_seconds_for(seconds: float) -> int:
    """Short settlement cycles, so that a run shows several: a quarter of the run, at least 4 s."""
    return max(4, int(seconds / 4))


def demo_settings(url: str, state_dir: Path, cycle_seconds: int = 15) -> Settings:
    def account(name: str) -> dict[str, Any]:
        creds = Credentials(api_key=SecretStr(f"demo-{name}-key"), api_secret=SecretStr(f"demo-{name}-secret"))
        return {
            "name": name,
            "environment": "paper",
            "api_url": url,
            "api_key_env": "UNUSED",
            "api_secret_env": "UNUSED",
            "credentials": creds,
            "email": f"{name}@paper.local",
        }

    return Settings(
        bot=BotSettings(state_dir=state_dir, poll_interval_s=0.5, reconcile_interval_s=10, heartbeat_interval_s=10),
        lead=AccountSettings(**account("lead")),
        protection=ProtectionSettings(),
        settlement=SettlementSettings(cycle_seconds=cycle_seconds),
        treasury=AccountSettings(**account("master")),
        followers=tuple(
            FollowerSettings(
                **account(n),
                investment=Decimal(usdt),
                copy_existing=True,
                total_stop_loss_pct=STOP_LOSS_PCT.get(n, Decimal(30)),
            )
            for n, usdt in FOLLOWERS
        ),
    )


async def scripted_lead(client: Any, seed: int, stop: asyncio.Event, say: Any) -> None:
    """A seeded strategy: opens, adds, trims, closes and flips across BTC, ETH and SOL every couple of seconds."""
    rng = random.Random(seed)
    await client.load_markets()
    held = dict.fromkeys(SYMBOLS, Decimal(0))
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=rng.uniform(1.5, 3.0))
        if stop.is_set():
            return
        symbol = rng.choice(list(SYMBOLS))
        ticker = await client.fetch_ticker(symbol)
        price = Decimal(str(ticker["last"]))
        lot = Decimal(client.amount_to_precision(symbol, float(Decimal(rng.uniform(2000, 6000)) / price)))
        position = held[symbol]
        action = rng.choice(["open", "add", "trim", "close", "flip"] if position else ["open"])
        if action in ("open", "add"):
            side = ("buy" if rng.random() < 0.5 else "sell") if not position else ("buy" if position > 0 else "sell")
            qty = lot
        elif action == "trim":
            qty = Decimal(client.amount_to_precision(symbol, float(abs(position) * Decimal("0.4"))))
            side = "sell" if position > 0 else "buy"
        elif action == "close":
            qty, side = abs(position), ("sell" if position > 0 else "buy")
        else:
            qty, side = abs(position) + lot, ("sell" if position > 0 else "buy")
        if qty <= 0:
            continue
        order = await client.create_order(symbol, "market", side, float(qty))
        held[symbol] += qty if side == "buy" else -qty
        say(
            f"lead {action:<5} {side:<4} {qty} {symbol.split('/')[0]} at {order['average']}  "
            f"-> lead holds {held[symbol]}"
        )


def _fresh_state(state_dir: Path) -> Path:
    """The demo's paper exchange starts empty, so its state starts empty too. Returns the log path."""
    state_dir.mkdir(parents=True, exist_ok=True)
    for stale in state_dir.glob(f"{DB_FILE}*"):
        stale.unlink()
    return state_dir / "bot.log"


def settlement_summary(store: Any, state_dir: Path) -> str:
    """One line per settled cycle, then the Markdown report of the latest cycle with a profit share, else of the
    latest with a compensation, else of the latest."""
    lines = ["settlements (lead -> follower compensation, follower -> lead profit share):"]
    shown: dict[str, str] = {}  # the latest cycle of each kind
    for cycle in sorted(store.settlement.settled_cycles(), key=lambda c: int(c.split("-")[1])):
        rows = store.settlement.rows(cycle)
        comp = sum((r.compensation for r in rows), Decimal(0))
        share = sum((r.profit_share for r in rows), Decimal(0))
        lines.append(
            f"  {cycle}: compensation {comp:.2f}, profit share {share:.2f}  "
            f"{state_dir / 'reports' / cycle / 'settlement.md'}"
        )
        shown["any"] = cycle
        if share > 0:
            shown["share"] = cycle
        if comp > 0:
            shown["compensation"] = cycle
    if not shown:
        return "no cycle ended during the run"
    report = shown.get("share") or shown.get("compensation") or shown["any"]
    lines += ["", (state_dir / "reports" / report / "settlement.md").read_text()]
    return "\n".join(lines)


async def grow_the_lead(exchange: PaperExchange, say: Any) -> None:
    """The lead tops up: its capacity (equity / 0.20) grows past what dave's 90,000 needs."""
    exchange.ledger.deposit(exchange.ledger.accounts["lead"], Decimal(3000))
    say("lead deposits 3,000 USDT: capacity grows, dave's 90,000 now fits")


async def price_shock(exchange: PaperExchange, lead: Any, runtime: Runtime, say: Any) -> None:
    """A shock against the lead's largest position, once bob holds his copy of it, big enough to cross bob's
    1.5 % stop loss; then waits (bounded) until bob is stopped: the demo shows it on a slow machine too."""
    deadline = time.monotonic() + 20
    market_id, bob_notional = "", Decimal(0)
    while time.monotonic() < deadline:
        positions = await lead.fetch_positions()
        if positions:
            market_id = max(positions, key=lambda p: abs(float(p["notional"] or 0)))["info"]["symbol"]
            held = exchange.ledger.accounts["bob"].positions.get(market_id)
            bob_notional = abs(held.amount) * exchange.ledger.prices[market_id].last if held else Decimal(0)
            if bob_notional > 0:
                break
        await asyncio.sleep(0.2)
    threshold = Decimal(FOLLOWERS[1][1]) * STOP_LOSS_PCT["bob"] / 100
    pct = max(Decimal(12), min(Decimal(50), 200 * threshold / bob_notional)) if bob_notional else Decimal(12)
    await move_price(exchange, lead, say, -pct.quantize(Decimal(1)), "price shock")
    while time.monotonic() < deadline + 20:
        row = runtime.settler.store.follower("bob") if hasattr(runtime, "settler") else None
        if row is not None and row.state in (FollowerState.CLOSING, FollowerState.STOPPED_LOSS):
            return
        await asyncio.sleep(0.2)


async def move_price(exchange: PaperExchange, lead: Any, say: Any, pct: Decimal, what: str) -> None:
    """Moves the price of the lead's largest position by `pct` in the lead's favour (negative: against it)."""
    positions = await lead.fetch_positions()
    if not positions:
        say(f"{what}: the lead holds nothing")
        return
    biggest = max(positions, key=lambda p: abs(float(p["notional"] or 0)))
    market_id = biggest["info"]["symbol"]
    last = exchange.ledger.prices[market_id].last
    factor = 1 + pct / 100 if biggest["side"] == "long" else 1 - pct / 100
    tick = exchange.ledger.markets[market_id].tick_size
    exchange.ledger.set_price(market_id, (last * factor / tick).to_integral_value() * tick)
    say(
        f"{what}: {market_id} {last} -> {exchange.ledger.prices[market_id].last} "
        f"({'against' if pct < 0 else 'for'} the lead's {biggest['side']})"
    )


async def settled(runtime: Runtime, cycle_id: str, timeout_s: float) -> None:
    """Waits (bounded) until the daemon has settled `cycle_id`: a fixed pause is too short on a busy machine."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        settler = getattr(runtime, "settler", None)
        if settler is not None and cycle_id in settler.book.settled_cycles():
            return
        await asyncio.sleep(0.2)


async def until_next_cycle(cycle_seconds: int, extra: float) -> None:
    await asyncio.sleep(cycle_seconds - time.time() % cycle_seconds + extra)


Say = Callable[[str], None]


@dataclass(frozen=True)
class Story:
    """One demo: its accounts, its daemon's settings, its lead, and the events it plays on the way."""

    title: str
    accounts: dict[str, Any]
    settings: Callable[[str, Path, int], Settings]  # (paper URL, state directory, cycle seconds)
    lead: Callable[[str], Any]  # a ccxt client of the lead, for the paper URL
    script: Callable[[Any, int, asyncio.Event, Say], Coroutine[Any, Any, None]]  # (lead, seed, stop, say)
    plot: Callable[[PaperExchange, Any, Runtime, Say, float, int], Awaitable[None]]  # the events, in order
    epilogue: tuple[str, ...]


async def _futures_plot(
    exchange: PaperExchange, lead: Any, runtime: Runtime, say: Say, seconds: float, cycle_seconds: int
) -> None:
    await asyncio.sleep(seconds * 0.3)
    await grow_the_lead(exchange, say)
    await asyncio.sleep(seconds * 0.2)
    await price_shock(exchange, lead, runtime, say)  # everyone loses; bob's stop hits
    await until_next_cycle(cycle_seconds, 0.5)
    await move_price(exchange, lead, say, Decimal(10), "rebound")  # a winning cycle: profit is shared


FUTURES_STORY = Story(
    "paper exchange",
    _accounts(),
    demo_settings,
    lambda url: build_binanceusdm(url, "demo-lead-key", "demo-lead-secret"),
    scripted_lead,
    _futures_plot,
    (
        "lead_x_r is the lead's position scaled by the follower's copy-equity ratio: what Smart Sync aims for;",
        "a follower below it had an open skipped or truncated (below the market's minimum or its step).",
        "bob's 1.5 % total stop loss met the price shock (stopped_loss); dave waited for capacity until the lead",
        "grew, then copied the lead's positions as he found them (copy_existing).",
    ),
)


async def play(story: Story, seconds: float, state_dir: Path, seed: int) -> int:
    """Runs a story: the paper exchange, the daemon, the lead's script and the story's events; then the table,
    the settlements and where the logs and state are."""
    log_path = _fresh_state(state_dir)
    exchange = PaperExchange(PaperConfig.model_validate(story.accounts))
    url = await exchange.start("127.0.0.1", 0)
    exchange.start_random_walk(seed=seed, interval_s=0.5, volatility=Decimal("0.0004"))
    cycle_seconds = cycle_seconds_for(seconds)
    settings = story.settings(url, state_dir, cycle_seconds)
    started = time.monotonic()

    def say(line: str) -> None:
        print(f"[{time.monotonic() - started:5.1f}s] {line}", flush=True)

    names = [(f.name, f"{f.investment:f}") for f in settings.followers]
    say(
        f"{story.title} at {url}; lead 20,000 USDT; followers "
        + ", ".join(f"{n} {u}" for n, u in names)
        + f"; running {seconds:.0f}s; settlement every {cycle_seconds}s"
    )
    with log_path.open("w") as log_file:
        logs.configure("json", stream=log_file)
        runtime = Runtime(settings, install_signals=False)
        daemon = asyncio.create_task(runtime.run())
        lead = story.lead(url)
        stop = asyncio.Event()
        script = asyncio.create_task(story.script(lead, seed, stop, say))
        try:
            deadline = time.monotonic() + seconds
            await story.plot(exchange, lead, runtime, say, seconds, cycle_seconds)
            await settled(runtime, short_cycle_of(datetime.now(UTC), cycle_seconds).id, 4 * cycle_seconds)
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        finally:
            stop.set()
            await script
            await asyncio.sleep(1.5)  # lets the daemon copy the last lead change
            runtime.stop()
            code = await daemon
            await lead.close()
            await exchange.stop()
    store = open_state(settings.bot.state_dir)
    try:
        print()
        print(lead_line(store, settings))
        print(table(follower_rows(store, settings)))
        print()
        print(settlement_summary(store, state_dir))
    finally:
        store.close()
    print()
    for line in story.epilogue:
        print(line)
    print(f"logs (JSON lines): {log_path}")
    print(f"state (SQLite):    {db_path(state_dir)}")
    if shutil.which("bot"):
        print(f"status again:      bot status --config <a config with state_dir = {state_dir}>")
    return code


async def run_demo(seconds: float, state_dir: Path, seed: int) -> int:
    return await play(FUTURES_STORY, seconds, state_dir, seed)

"""`bot status`: per follower state, copy equity, PnL, positions beside the lead's, last sync. Reads the store."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.core.model import ZERO
from bot.settings import Settings
from bot.store.db import Store


def _ago(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if ms else "never"


def follower_rows(store: Store, settings: Settings) -> list[dict[str, str]]:
    """One row per follower and symbol: the follower's position beside r · L, the lead's scaled position."""
    lead_equity = (store.equity("lead") or (ZERO, 0))[0]
    lead = {s: q for s, (q, _) in store.lead_positions().items()}
    rows = []
    for follower in store.followers():
        account_equity, at = store.equity(follower.name) or (follower.start_equity, follower.activated_ms)
        copy_equity = account_equity - follower.reserve
        ratio = copy_equity / lead_equity if lead_equity else ZERO
        positions = store.follower_positions(follower.name)
        intents = store.all_intents(follower.name)
        last_sync = max((i.id for i in intents), default=0)
        symbols = sorted(set(lead) | set(positions)) or ["-"]
        for symbol in symbols:
            rows.append(
                {
                    "follower": follower.name,
                    "state": follower.state,
                    "copy_equity": f"{copy_equity:.2f}",
                    "pnl": f"{copy_equity - follower.investment:+.2f}",
                    "symbol": symbol,
                    "position": str(positions.get(symbol, ZERO)),
                    "lead_x_r": f"{lead.get(symbol, ZERO) * ratio:.6f}" if symbol != "-" else "-",
                    "orders": str(sum(1 for i in intents if i.status in ("filled", "partial"))),
                    "skips": str(len(store.skips(follower.name))),
                    "last_sync": _ago(at) if last_sync else "never",
                }
            )
    return rows


def table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "no followers recorded yet"
    headers = list(rows[0])
    widths = {h: max(len(h), *(len(r[h]) for r in rows)) for h in headers}
    lines = ["  ".join(h.ljust(widths[h]) for h in headers), "  ".join("-" * widths[h] for h in headers)]
    lines += ["  ".join(r[h].ljust(widths[h]) for h in headers) for r in rows]
    return "\n".join(lines)


def render_status(settings: Settings) -> str:
    path = settings.bot.state_dir / "copybot.sqlite3"
    if not path.exists():
        return f"no state at {path}: the daemon has not run with this configuration yet"
    store = Store(path)
    try:
        lead_equity = store.equity("lead")
        head = [
            f"state: {path}",
            f"lead equity: {lead_equity[0] if lead_equity else 'unknown'}   last lead change: {store.last_seq()}",
        ]
        return "\n".join(head) + "\n" + table(follower_rows(store, settings))
    finally:
        store.close()

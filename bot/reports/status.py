"""`bot status`: per follower state, copy equity, PnL, positions beside the lead's, last sync. Reads the store."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bot.core.model import ZERO, FollowerState, IntentStatus, TransferStatus
from bot.core.risk import Protection, capacity, lead_eligible, stop_loss_threshold, utilization
from bot.settings import Settings
from bot.store.db import Store
from bot.store.state_dir import db_path


def _ago(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if ms else "never"


def follower_rows(store: Store, settings: Settings) -> list[dict[str, str]]:
    """One row per follower and symbol: the follower's position beside r · L, the lead's scaled position. On spot
    the copy holding, and the dust: what is left where the lead holds nothing (below the exchange's minimums,
    kept and valued, sold by a later sale that makes it possible)."""
    spot = settings.bot.market == "spot"
    lead_equity = (store.equity("lead") or (ZERO, 0))[0]
    lead = {s: q for s, (q, _) in store.lead_positions().items()}
    stop_pct = {f.name: f.total_stop_loss_pct for f in settings.followers}
    rows = []
    for follower in store.followers():
        account_equity, at = store.equity(follower.name) or (follower.start_equity, follower.activated_ms)
        copy_equity = account_equity - follower.reserve if follower.state != FollowerState.PENDING_CAPACITY else ZERO
        ratio = copy_equity / lead_equity if lead_equity else ZERO
        positions = store.follower_positions(follower.name)
        intents = store.all_intents(follower.name)
        pct = stop_pct.get(follower.name)
        distance = copy_equity - stop_loss_threshold(follower.investment, pct) if pct is not None else None
        symbols = sorted(set(lead) | set(positions)) or ["-"]
        for symbol in symbols:
            rows.append(
                {
                    "follower": follower.name,
                    "state": follower.state,
                    "copy_equity": f"{copy_equity:.2f}",
                    "pnl": f"{copy_equity - follower.investment:+.2f}"
                    if follower.state != FollowerState.PENDING_CAPACITY
                    else "-",
                    "stop_loss_distance": f"{distance:.2f}"
                    if distance is not None and follower.state == FollowerState.ACTIVE
                    else "-",
                    "symbol": symbol,
                    ("holding" if spot else "position"): f"{positions.get(symbol, ZERO).normalize():f}",
                    "lead_x_r": f"{lead.get(symbol, ZERO) * ratio:.8f}" if symbol != "-" else "-",
                    "orders": str(sum(1 for i in intents if i.status in (IntentStatus.FILLED, IntentStatus.PARTIAL))),
                    "skips": str(len(store.skips(follower.name))),
                    "last_sync": _ago(at) if intents else "never",
                }
            )
            if spot:
                dust = positions.get(symbol, ZERO) > 0 and not lead.get(symbol, ZERO)
                rows[-1]["dust"] = "dust" if dust else "-"
    return rows


def lead_line(store: Store, settings: Settings) -> str:
    """The lead's eligibility and capacity utilization (SPEC section 6)."""
    known = store.equity("lead")
    if known is None:
        return "lead equity: unknown"
    equity = known[0]
    p = settings.protection
    protection = Protection(p.enabled, p.min_lead_equity, p.collateral_ratio, p.pause_utilization)
    aum = sum((r.investment for r in store.followers() if r.state == FollowerState.ACTIVE), ZERO)
    used = utilization(aum, equity, protection)
    return (
        f"lead equity: {equity:.2f}   eligible: {'yes' if lead_eligible(equity, protection) else 'no'}   "
        f"capacity: {capacity(equity, protection):.2f}   AUM: {aum:.2f}   "
        f"utilization: {'-' if used is None else f'{used * 100:.1f}%'}   last lead change: {store.last_seq()}"
    )


def weight_line(store: Store) -> str:
    """The request weight the daemon used per exchange host, as of its last heartbeat (SPEC 12)."""
    recorded = store.get_meta("request_weight")
    if not recorded:
        return "request weight: not recorded yet (the daemon records it with each heartbeat)"
    hosts = json.loads(recorded)
    interval = store.get_meta("reconcile_interval_s")
    return (
        "request weight: "
        + "; ".join(
            f"{host} {v['used_1m']}/min now, peak {v['peak_1m']}, allowance {v['allowance']}"
            for host, v in hosts.items()
        )
        + (f"   reconciliation every {interval}s" if interval else "")
    )


def transfers_line(store: Store) -> str:
    """Settlement transfers by status; the ones that need attention are listed with their last error."""
    transfers = store.settlement.transfers()
    if not transfers:
        return "transfers: none"
    counts: dict[str, int] = {}
    for t in transfers:
        counts[t.status] = counts.get(t.status, 0) + 1
    lines = ["transfers: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))]
    for t in transfers:
        if t.status in (TransferStatus.PENDING, TransferStatus.FAILED):
            retry = " (`bot settle --retry` once fixed)" if t.status == TransferStatus.FAILED else ""
            lines.append(
                f"  {t.status} {t.client_tran_id}: {t.kind} {t.amount:.2f} {t.from_account} -> {t.to_account}, "
                f"{t.attempts} attempt(s){retry}: {t.error or '-'}"
            )
    return "\n".join(lines)


def table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "no followers recorded yet"
    headers = list(rows[0])
    widths = {h: max(len(h), *(len(r[h]) for r in rows)) for h in headers}
    lines = ["  ".join(h.ljust(widths[h]) for h in headers), "  ".join("-" * widths[h] for h in headers)]
    lines += ["  ".join(r[h].ljust(widths[h]) for h in headers) for r in rows]
    return "\n".join(lines)


def render_status(settings: Settings) -> str:
    path = db_path(settings.bot.state_dir)
    if not path.exists():
        return f"no state at {path}: the daemon has not run with this configuration yet"
    store = Store(path)
    try:
        head = [f"state: {path}", lead_line(store, settings), weight_line(store), transfers_line(store)]
        return "\n".join(head) + "\n" + table(follower_rows(store, settings))
    finally:
        store.close()

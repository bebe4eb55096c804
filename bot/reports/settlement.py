"""Settlement reports per cycle: settlement.json, .csv and .md under <state_dir>/reports/<cycle>/, written
atomically from the store (so `bot settle` can always rewrite them)."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.core.settlement import lead_collateral_after
from bot.store.db import Store

COLUMNS = (
    "follower",
    "e_start",
    "e_end",
    "flows",
    "fees",
    "funding",
    "pnl",
    "compensation",
    "profit_share",
    "fee_rebate",
    "late",
    "episode",
)
MONEY = COLUMNS[1:10]


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _cents(value: str | Decimal) -> str:
    return f"{Decimal(value):.2f}"


def report_data(store: Store, cycle: str, start_ms: int, end_ms: int, timezone: str) -> dict[str, Any]:
    rows = store.settlement.rows(cycle)
    followers = [
        {
            "follower": r.follower,
            **{c: f"{getattr(r, c):f}" for c in MONEY},
            "late": "true" if r.late else "false",
            "episode": str(r.episode),
        }
        for r in rows
    ]
    totals = {c: f"{sum((getattr(r, c) for r in rows), Decimal(0)):f}" for c in MONEY[2:]}
    lead = store.settlement.boundary(cycle, "lead")
    before = lead.equity if lead else None
    after = (
        lead_collateral_after(before, Decimal(totals["compensation"]), Decimal(totals["profit_share"]))
        if before is not None
        else None
    )
    transfers = [
        {
            "id": t.client_tran_id,
            "kind": t.kind,
            "follower": t.follower,
            "from": t.from_account,
            "to": t.to_account,
            "amount": f"{t.amount:f}",
            "status": t.status,
            "tran_id": t.tran_id,
            "attempts": t.attempts,
            "error": t.error,
        }
        for t in store.settlement.transfers(cycle)
    ]
    return {
        "cycle": cycle,
        "start": datetime.fromtimestamp(start_ms / 1000, UTC).isoformat(),
        "end": datetime.fromtimestamp(end_ms / 1000, UTC).isoformat(),
        "timezone": timezone,
        "followers": followers,
        "totals": totals,
        "lead": {
            "collateral_before": None if before is None else f"{before:f}",
            "collateral_after": None if after is None else f"{after:f}",
        },
        "transfers": transfers,
    }


def to_csv(data: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in data["followers"]:
        writer.writerow([row[c] for c in COLUMNS])
    writer.writerow(["TOTAL", "", "", "", *(data["totals"][c] for c in MONEY[3:]), "", ""])
    return out.getvalue()


def to_markdown(data: dict[str, Any]) -> str:
    lines = [
        f"# Settlement {data['cycle']}",
        "",
        f"Period: {data['start']} to {data['end']} ("
        + ("a short test cycle" if data["cycle"].startswith("S") else f"the natural week in {data['timezone']}")
        + ").",
        "`pnl = e_end - e_start - flows`; fees and funding are already inside the equities, and settlement "
        "transfers are never PnL (E start counts the previous cycle's, E end those still on their way). Each "
        "activation of a follower inside the cycle is settled on its own row. A loss is compensated "
        "by the lead (rounded up to the cent), a profit shares `profit_share` of it with the lead (rounded down); "
        "the fee rebate is owed to the lead by the operator.",
        "",
        "| follower | E start | E end | flows | fees | funding | PnL | compensation (lead → follower) "
        "| profit share (follower → lead) | fee rebate (to lead) | late |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in data["followers"]:
        name = row["follower"] if row["episode"] in ("0", "1") else f"{row['follower']} (activation {row['episode']})"
        lines.append("| " + " | ".join([name, *(_cents(row[c]) for c in MONEY), row["late"]]) + " |")
    t = data["totals"]
    lines.append("| **total** | | | | " + " | ".join(f"**{_cents(t[c])}**" for c in MONEY[3:]) + " | |")
    lead = data["lead"]
    lines += [
        "",
        "Lead collateral (equity at the boundary): "
        f"before {_cents(lead['collateral_before']) if lead['collateral_before'] else 'unknown'}, "
        f"after transfers {_cents(lead['collateral_after']) if lead['collateral_after'] else 'unknown'}.",
        "",
    ]
    if data["transfers"]:
        lines += [
            "| transfer id | kind | from | to | amount | status | attempts |",
            "| --- | --- | --- | --- | ---: | --- | ---: |",
        ]
        lines += [
            f"| `{t['id']}` | {t['kind']} | {t['from']} | {t['to']} | {_cents(t['amount'])} | {t['status']} "
            f"| {t['attempts']} |"
            for t in data["transfers"]
        ]
    else:
        lines.append("No transfers in this cycle.")
    if any(r["late"] == "true" for r in data["followers"]):
        lines += ["", "late: the daemon was not running at the boundary; E end is the first snapshot after it."]
    return "\n".join(lines) + "\n"


def write_reports(store: Store, state_dir: Path, cycle: str, start_ms: int, end_ms: int, timezone: str) -> Path:
    """Writes the three files for one cycle and returns its report directory."""
    data = report_data(store, cycle, start_ms, end_ms, timezone)
    directory = state_dir / "reports" / cycle
    _write_atomic(directory / "settlement.json", json.dumps(data, indent=2) + "\n")
    _write_atomic(directory / "settlement.csv", to_csv(data))
    _write_atomic(directory / "settlement.md", to_markdown(data))
    return directory

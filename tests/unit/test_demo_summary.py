"""The demo's settlement summary shows the report a user wants to see: the latest cycle that shared a profit,
else the latest with a compensation (a run whose cycles all lost, or broke even first), else the latest."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from bot.demo.futures import settlement_summary

D = Decimal


@dataclass
class _Row:
    compensation: Decimal
    profit_share: Decimal


class _Settlement:
    def __init__(self, cycles: dict[str, tuple[str, str]]) -> None:
        self.cycles = cycles

    def settled_cycles(self) -> list[str]:
        return list(self.cycles)

    def rows(self, cycle: str) -> list[_Row]:
        comp, share = self.cycles[cycle]
        return [_Row(D(comp), D(share))]


class _Store:
    def __init__(self, cycles: dict[str, tuple[str, str]]) -> None:
        self.settlement = _Settlement(cycles)


def _shown(tmp_path: Path, cycles: dict[str, tuple[str, str]]) -> str:
    for cycle in cycles:
        (tmp_path / "reports" / cycle).mkdir(parents=True)
        (tmp_path / "reports" / cycle / "settlement.md").write_text(f"# Settlement {cycle}\n")
    return settlement_summary(_Store(cycles), tmp_path).splitlines()[-1]


def test_the_report_shown_is_the_latest_with_a_profit_share_else_a_compensation_else_the_latest(
    tmp_path: Path,
) -> None:
    assert _shown(tmp_path / "a", {"S4-10": ("0", "0"), "S4-11": ("0", "5"), "S4-12": ("3", "0")}) == (
        "# Settlement S4-11"
    )
    # every cycle lost or broke even: the first one (nothing to transfer) is not the one to show
    assert _shown(tmp_path / "b", {"S4-10": ("0", "0"), "S4-11": ("1.79", "0"), "S4-12": ("0.45", "0")}) == (
        "# Settlement S4-12"
    )
    assert _shown(tmp_path / "c", {"S4-10": ("0", "0"), "S4-11": ("0", "0")}) == "# Settlement S4-11"
    assert settlement_summary(_Store({}), tmp_path) == "no cycle ended during the run"

"""ARCHITECTURE.md's import rules: bot/core imports nothing else of bot; only the CLI imports bot/paper; only
bot/venue (and the paper exchange) import ccxt."""

from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).resolve().parents[2] / "bot"


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def modules() -> list[Path]:
    return sorted(BOT.rglob("*.py"))


def test_only_the_cli_imports_the_paper_exchange() -> None:
    offenders = [
        str(p.relative_to(BOT))
        for p in modules()
        if "paper" not in p.parts
        and p.name != "cli.py"
        and any(name == "bot.paper" or name.startswith("bot.paper.") for name in imports_of(p))
    ]
    assert offenders == []


def test_core_imports_nothing_else_of_bot() -> None:
    core = BOT / "core"
    offenders = [
        str(p.relative_to(BOT))
        for p in (sorted(core.rglob("*.py")) if core.exists() else [])
        if any(name.startswith("bot.") and not name.startswith("bot.core") for name in imports_of(p))
    ]
    assert offenders == []


def test_only_the_venue_and_the_paper_exchange_import_ccxt() -> None:
    offenders = [
        str(p.relative_to(BOT))
        for p in modules()
        if p.parts[len(BOT.parts)] not in ("venue", "paper")
        and any(name == "ccxt" or name.startswith("ccxt.") for name in imports_of(p))
    ]
    assert offenders == []


def test_rules_see_the_modules() -> None:
    assert len(modules()) > 5  # the walk above really reads the package

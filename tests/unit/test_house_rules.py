"""ARCHITECTURE.md's import rules: bot/core imports nothing else of bot; only the CLI and the demo import
bot/paper, which imports nothing else of bot; only bot/venue (and the paper exchange) import ccxt; nothing in
core, engine or store reads a clock but the one injected clock (`bot/engine/clock.py`)."""

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


def test_only_the_cli_and_the_demo_import_the_paper_exchange() -> None:
    offenders = [
        str(p.relative_to(BOT))
        for p in modules()
        if p.parts[len(BOT.parts)] not in ("paper", "demo")
        and p.name != "cli.py"
        and any(name == "bot.paper" or name.startswith("bot.paper.") for name in imports_of(p))
    ]
    assert offenders == []


def test_the_paper_exchange_imports_nothing_of_the_bot_outside_itself() -> None:
    """It stands below the engine: a counterpart, not part of the product (the demo that uses both is above)."""
    paper = sorted((BOT / "paper").rglob("*.py"))
    offenders = [
        f"{p.relative_to(BOT)}: {name}"
        for p in paper
        for name in sorted(imports_of(p))
        if name.startswith("bot.") and not name.startswith("bot.paper")
    ]
    assert paper and offenders == []


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


CLOCK_READS = {
    ("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"), ("time", "time"),
    ("time", "time_ns"), ("time", "monotonic"), ("time", "monotonic_ns"), ("time", "perf_counter"),
}  # fmt: skip


def clock_reads(path: Path) -> list[str]:
    """`module.function` calls in the file that read a clock (datetime.now(), time.monotonic(), ...)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
            if (name, node.func.attr) in CLOCK_READS:
                found.append(f"{path.name}:{node.lineno} {name}.{node.func.attr}()")
    return found


def test_only_the_clock_module_reads_a_clock_in_core_engine_and_store() -> None:
    offenders = [
        read
        for part in ("core", "engine", "store")
        for p in sorted((BOT / part).rglob("*.py"))
        if p != BOT / "engine" / "clock.py"
        for read in clock_reads(p)
    ]
    assert offenders == []
    assert clock_reads(BOT / "engine" / "clock.py")  # the walk above really finds clock reads


def test_every_module_says_what_it_owns() -> None:
    undocumented = [str(p.relative_to(BOT)) for p in modules() if not ast.get_docstring(ast.parse(p.read_text()))]
    assert undocumented == []


def test_rules_see_the_modules() -> None:
    assert len(modules()) > 5  # the walk above really reads the package

"""The `bot` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.settings import Settings

EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bot", description="copybot: capital-protected Smart Sync copy trading")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="the copy-trading daemon")
    run.add_argument("--config", type=Path, required=True)
    check = commands.add_parser("check-config", help="validate a configuration and print a summary")
    check.add_argument("--config", type=Path, required=True)
    status = commands.add_parser("status", help="per follower: state, copy equity, PnL, positions, last sync")
    status.add_argument("--config", type=Path, required=True)
    settle_cmd = commands.add_parser("settle", help="settle due cycles (idempotent) and write their reports")
    settle_cmd.add_argument("--config", type=Path, required=True)
    settle_cmd.add_argument("--cycle", help="a cycle id such as 2026-W47: settle up to it, or rewrite its reports")
    settle_cmd.add_argument(
        "--retry", action="store_true", help="try failed transfers again (after fixing what made them fail)"
    )
    demo = commands.add_parser("demo", help="paper exchange, scripted lead and three followers, no keys needed")
    demo.add_argument("--seconds", type=float, default=60.0)
    demo.add_argument("--state-dir", type=Path, default=Path("var/demo"))
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--market", choices=("futures", "spot"), default="futures", help="the market type to copy")
    paper = commands.add_parser("paper-exchange", help="serve the Binance USDⓈ-M compatible paper exchange on loopback")
    paper.add_argument("--accounts", type=Path, required=True, help="accounts file (JSON)")
    paper.add_argument("--port", type=int, default=8900)
    paper.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    paper.add_argument("--markets", type=int, default=0, help="extra synthetic markets to list")
    return parser


def _load(path: Path) -> Settings:
    """Settings, or exit 2 after listing every problem with its field path."""
    from bot.settings import ConfigError, load_settings

    try:
        return load_settings(path)
    except ConfigError as exc:
        print(f"config error in {path}:", file=sys.stderr)
        for field, reason in exc.problems:
            print(f"  {field}: {reason}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def _run(config: Path) -> int:
    from bot import logs
    from bot.engine.reload import account_secrets
    from bot.engine.runtime import Runtime

    settings = _load(config)
    redactor = logs.SecretRedactor(account_secrets(settings))
    logs.configure(settings.bot.log_format, redactor=redactor, level=settings.bot.log_level)
    return asyncio.run(Runtime(settings, config_path=config, redactor=redactor).run())


def _check_config(config: Path) -> int:
    from bot.settings import summary

    settings = _load(config)
    print(f"{config}: ok")
    print(summary(settings))
    return 0


def _status(config: Path) -> int:
    from bot.reports.status import render_status

    settings = _load(config)
    print(render_status(settings))
    return 0


def _settle(config: Path, cycle: str | None, retry: bool) -> int:
    from bot import logs
    from bot.engine.reload import account_secrets
    from bot.engine.settle_command import settle_command

    settings = _load(config)
    logs.configure(
        settings.bot.log_format, redactor=logs.SecretRedactor(account_secrets(settings)), level=settings.bot.log_level
    )
    return asyncio.run(settle_command(settings, cycle, retry))


def _paper_exchange(args: argparse.Namespace) -> int:
    from bot.paper.server import PaperConfig, serve_forever

    try:
        config = PaperConfig.load(args.accounts)
    except ValueError as exc:
        print(f"bot paper-exchange: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(config, args.host, args.port, args.markets))
    return 0


def _demo(args: argparse.Namespace) -> int:
    if args.market == "spot":
        from bot.demo.spot import run_spot_demo

        return asyncio.run(run_spot_demo(args.seconds, args.state_dir, args.seed))
    from bot.demo.futures import run_demo

    return asyncio.run(run_demo(args.seconds, args.state_dir, args.seed))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args.config)
    if args.command == "check-config":
        return _check_config(args.config)
    if args.command == "status":
        return _status(args.config)
    if args.command == "settle":
        return _settle(args.config, args.cycle, args.retry)
    if args.command == "demo":
        return _demo(args)
    if args.command == "paper-exchange":
        return _paper_exchange(args)
    raise AssertionError(f"unhandled command {args.command}")

"""The `bot` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bot", description="copybot: capital-protected Smart Sync copy trading")
    commands = parser.add_subparsers(dest="command", required=True)
    paper = commands.add_parser("paper-exchange", help="serve the Binance USDⓈ-M compatible paper exchange on loopback")
    paper.add_argument("--accounts", type=Path, required=True, help="accounts file (JSON)")
    paper.add_argument("--port", type=int, default=8900)
    paper.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    paper.add_argument("--markets", type=int, default=0, help="extra synthetic markets to list")
    return parser


def _paper_exchange(args: argparse.Namespace) -> int:
    from bot.paper.server import PaperConfig, serve_forever

    try:
        config = PaperConfig.load(args.accounts)
    except ValueError as exc:
        print(f"bot paper-exchange: {exc}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(config, args.host, args.port, args.markets))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "paper-exchange":
        return _paper_exchange(args)
    raise AssertionError(f"unhandled command {args.command}")

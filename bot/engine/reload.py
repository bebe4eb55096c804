"""What a configuration may change in a running daemon (SIGHUP): what needs a restart instead, the `symbols` the
exchange does not list, the followers removed, kept and added; and the secrets the log redactor must know."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.settings import FollowerSettings, Settings

# settings a running daemon cannot take on SIGHUP (its clients, state and loops are built from them)
RESTART_ONLY = ("bot", "settlement", "treasury")
ACCOUNT_FIELDS = ("exchange", "environment", "api_url", "api_key_env", "api_secret_env", "credentials")


def account_secrets(settings: Settings) -> list[str]:
    """Every API key and secret of the configuration (the treasury's included), for the log redactor."""
    out = []
    for account in (*settings.accounts(), *([settings.treasury] if settings.treasury else [])):
        if account.credentials is not None:
            out += [account.credentials.api_key.get_secret_value(), account.credentials.api_secret.get_secret_value()]
    return out


def restart_only_changes(old: Settings, new: Settings) -> list[str]:
    """What a reload cannot apply to a running daemon, each as `path: reason`."""
    problems = []
    for section in RESTART_ONLY:
        if getattr(old, section) != getattr(new, section):
            problems.append(f"{section}: changes need a restart")
    before = {f.name: f for f in old.followers}
    for index, follower in enumerate(new.followers):
        previous = before.get(follower.name)
        for field in ACCOUNT_FIELDS if previous is not None else ():
            if getattr(previous, field) != getattr(follower, field):
                problems.append(f"followers.{index}.{field}: an account's connection changes need a restart")
    return problems


def unknown_symbols(settings: Settings, markets: Mapping[str, Any]) -> list[str]:
    """`symbols` entries that are not market ids of the exchange (e.g. "BTC/USDT:USDT" or "btcusdt")."""
    problems = []
    for index, follower in enumerate(settings.followers):
        for position, symbol in enumerate(follower.symbols):
            if symbol not in markets:
                problems.append(
                    f"followers.{index}.symbols.{position}: {symbol!r} is not a market id of the exchange"
                    " (market ids look like BTCUSDT)"
                )
    return problems


def followers_diff(old: Settings, new: Settings) -> tuple[list[str], list[FollowerSettings], list[FollowerSettings]]:
    """A reload's followers: the names removed, the new settings of those kept, and those added (new order)."""
    before = {f.name for f in old.followers}
    after = {f.name for f in new.followers}
    removed = [f.name for f in old.followers if f.name not in after]
    kept = [f for f in new.followers if f.name in before]
    added = [f for f in new.followers if f.name not in before]
    return removed, kept, added

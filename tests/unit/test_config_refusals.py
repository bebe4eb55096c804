"""Configurations that could trade the wrong account are refused with the field's path (exit 2 at the CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import logs
from bot.engine.reload import account_secrets, followers_diff, restart_only_changes, unknown_symbols
from bot.settings import ConfigError, load_settings

BASE = """
[bot]
state_dir = "var"
reconcile_interval_s = {reconcile}

[protection]
max_leverage = {leverage}

[lead]
name = "lead"
environment = "paper"
api_url = "http://127.0.0.1:8900"
api_key_env = "LEAD_KEY"
api_secret_env = "LEAD_SECRET"
email = "lead@x"

[[followers]]
name = "alice"
environment = "paper"
api_url = "{alice_url}"
api_key_env = "{alice_key}"
api_secret_env = "ALICE_SECRET"
email = "alice@x"
investment = 1000
symbols = {symbols}

[treasury]
name = "{treasury}"
environment = "paper"
api_url = "http://localhost:8900"
api_key_env = "MASTER_KEY"
api_secret_env = "MASTER_SECRET"
email = "m@x"
"""
ENV = {
    "LEAD_KEY": "lk",
    "LEAD_SECRET": "ls",
    "ALICE_KEY": "ak",
    "ALICE_SECRET": "as",
    "MASTER_KEY": "mk",
    "MASTER_SECRET": "ms",
}


def config(tmp_path: Path, **changes: str) -> Path:
    values = {
        "reconcile": "30",
        "leverage": "5",
        "alice_url": "http://127.0.0.1:8900",
        "alice_key": "ALICE_KEY",
        "symbols": "[]",
        "treasury": "master",
    }
    path = tmp_path / "bot.toml"
    path.write_text(BASE.format(**{**values, **changes}))
    return path


def problems(path: Path, environ: dict[str, str] | None = None) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ or ENV)
    return dict(caught.value.problems)


def test_the_base_config_is_valid(tmp_path: Path) -> None:
    assert load_settings(config(tmp_path), ENV).followers[0].name == "alice"


def test_a_follower_using_the_leads_key_variable_or_key_is_refused(tmp_path: Path) -> None:
    assert "followers.0.api_key_env" in problems(config(tmp_path, alice_key="LEAD_KEY"))
    same_value = {**ENV, "ALICE_KEY": "lk"}  # another variable, the same key
    assert "is also lead's" in problems(config(tmp_path), same_value)["followers.0.api_key_env"]


def test_a_treasury_named_like_a_trading_account_is_refused(tmp_path: Path) -> None:
    assert "treasury.name" in problems(config(tmp_path, treasury="alice"))


def test_paper_with_a_remote_url_is_refused(tmp_path: Path) -> None:
    found = problems(config(tmp_path, alice_url="https://fapi.binance.com"))
    assert any(p.startswith("followers.0") and "loopback" in r for p, r in found.items())


def test_a_fractional_max_leverage_and_a_tiny_reconcile_interval_are_refused(tmp_path: Path) -> None:
    assert "protection.max_leverage" in problems(config(tmp_path, leverage="2.5"))
    assert "bot.reconcile_interval_s" in problems(config(tmp_path, reconcile="0.5"))


def test_symbols_must_be_market_ids_of_the_exchange(tmp_path: Path) -> None:
    settings = load_settings(config(tmp_path, symbols='["BTCUSDT", "BTC/USDT:USDT", "ethusdt"]'), ENV)
    found = unknown_symbols(settings, {"BTCUSDT": object(), "ETHUSDT": object()})
    assert [p.split(":")[0] for p in found] == ["followers.0.symbols.1", "followers.0.symbols.2"]


def test_a_reload_names_what_only_a_restart_can_change(tmp_path: Path) -> None:
    old = load_settings(config(tmp_path), ENV)
    new = load_settings(config(tmp_path, reconcile="60", alice_key="ALICE_KEY2"), {**ENV, "ALICE_KEY2": "ak2"})
    assert restart_only_changes(old, new) == [
        "bot: changes need a restart",
        "followers.0.api_key_env: an account's connection changes need a restart",
        "followers.0.credentials: an account's connection changes need a restart",
    ]


def test_a_reload_tells_the_followers_removed_kept_and_added(tmp_path: Path) -> None:
    old = load_settings(config(tmp_path), ENV)
    alice = old.followers[0]
    bob = alice.model_copy(update={"name": "bob"})
    carol = alice.model_copy(update={"name": "carol"})
    new = old.model_copy(update={"followers": [carol, bob.model_copy(update={"investment": alice.investment + 1})]})
    both = old.model_copy(update={"followers": [alice, bob]})
    removed, kept, added = followers_diff(both, new)
    assert removed == ["alice"] and [f.name for f in added] == ["carol"]
    assert [(f.name, f.investment) for f in kept] == [("bob", alice.investment + 1)]  # the new settings


def test_the_treasury_and_every_follower_secret_reach_the_log_redactor(tmp_path: Path) -> None:
    secrets = account_secrets(load_settings(config(tmp_path), ENV))
    assert set(secrets) == set(ENV.values())
    redactor = logs.SecretRedactor(["xxxx"])
    for secret in account_secrets(load_settings(config(tmp_path), {k: v * 3 for k, v in ENV.items()})):
        redactor.add(secret)  # what a reload does for followers it adds
    assert redactor.scrub("treasury msmsms, alice akakak") == "treasury ***, alice ***"

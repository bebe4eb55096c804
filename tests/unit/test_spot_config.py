"""`bot.market = "spot"`: one daemon copies one market type; what does not belong to it is refused with its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import EXIT_CONFIG, main
from bot.settings import ConfigError, load_settings

ENV = {"LEAD_KEY": "lk", "LEAD_SECRET": "ls", "ALICE_KEY": "ak", "ALICE_SECRET": "as"}


def spot_config(tmp_path: Path, *, bot: str = "", lead: str = "", alice: str = "", extra: str = "") -> Path:
    path = tmp_path / "spot.toml"
    path.write_text(
        f"""
[bot]
market = "spot"
{bot}

[lead]
name = "lead"
environment = "testnet"
api_key_env = "LEAD_KEY"
api_secret_env = "LEAD_SECRET"
{lead}

[[followers]]
name = "alice"
environment = "testnet"
api_key_env = "ALICE_KEY"
api_secret_env = "ALICE_SECRET"
{alice or "investment = 500"}
{extra}
"""
    )
    return path


def problems(path: Path) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, ENV)
    return dict(caught.value.problems)


def test_a_spot_daemon_trades_every_account_through_binance_spot(tmp_path: Path) -> None:
    settings = load_settings(spot_config(tmp_path), ENV)
    assert settings.bot.market == "spot"
    assert {a.exchange for a in settings.accounts()} == {"binance"}


def test_the_default_market_is_futures(tmp_path: Path) -> None:
    path = spot_config(tmp_path)
    path.write_text(path.read_text().replace('market = "spot"', ""))
    settings = load_settings(path, ENV)
    assert settings.bot.market == "futures" and {a.exchange for a in settings.accounts()} == {"binanceusdm"}


def test_a_mix_of_market_types_is_refused(tmp_path: Path) -> None:
    found = problems(spot_config(tmp_path, lead='exchange = "binanceusdm"'))
    assert "trades futures, this daemon copies spot" in found["lead.exchange"]
    futures = spot_config(tmp_path, alice='investment = 500\nexchange = "binance"')
    futures.write_text(futures.read_text().replace('market = "spot"', 'market = "futures"'))
    assert "trades spot, this daemon copies futures" in problems(futures)["followers.0.exchange"]


def test_a_spot_investment_under_100_usdt_is_refused(tmp_path: Path) -> None:
    assert "at least 100 USDT" in problems(spot_config(tmp_path, alice="investment = 99.99"))["followers.0.investment"]
    assert load_settings(spot_config(tmp_path, alice="investment = 100"), ENV).followers[0].investment == 100


def test_futures_only_settings_on_a_spot_daemon_are_refused(tmp_path: Path) -> None:
    found = problems(spot_config(tmp_path, extra="[protection]\nmax_leverage = 3"))
    assert "futures only" in found["protection.max_leverage"]


def test_check_config_exits_2_with_the_field_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = spot_config(tmp_path, alice="investment = 50")
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        main(["check-config", "--config", str(path)])
    assert exited.value.code == EXIT_CONFIG
    assert "followers.0.investment: a spot copy needs at least 100 USDT" in capsys.readouterr().err

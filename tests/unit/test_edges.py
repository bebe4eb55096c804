"""Single edges of the shell: log processors, error translation, the read retry policy, settings."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path

import ccxt
import pytest
import structlog

from bot import logs
from bot.settings import ConfigError, Settings, load_settings
from bot.venue.errors import Fatal, NotFound, RateLimited, Rejected, Temporary, UnknownOutcome
from bot.venue.retry import read_with_retry
from bot.venue.translate import translate

ROOT = Path(__file__).resolve().parents[2]


def test_json_lines_with_utc_ts_numbers_as_strings_and_no_secrets() -> None:
    out = io.StringIO()
    logs.configure("json", stream=out, redactor=logs.SecretRedactor(["s3cr3t-value"]))
    structlog.get_logger().info(
        "follower_order_filled",
        qty=Decimal("0.002"),
        price=50000.5,
        count=3,
        error="auth failed for s3cr3t-value",
        api_key="abcd1234",
        api_key_env="LEAD_KEY",
    )
    line = json.loads(out.getvalue())
    assert line["event"] == "follower_order_filled" and line["level"] == "info" and line["ts"].endswith("Z")
    assert (line["qty"], line["price"], line["count"]) == ("0.002", "50000.5", "3")
    assert line["error"] == "auth failed for ***" and line["api_key"] == "***" and line["api_key_env"] == "LEAD_KEY"


@pytest.mark.parametrize(
    ("exc", "writing", "kind"),
    [
        (ccxt.AuthenticationError("x"), False, Fatal),
        (ccxt.OrderNotFound("x"), False, NotFound),
        (ccxt.InsufficientFunds("x"), True, Rejected),
        (ccxt.InvalidOrder("x"), True, Rejected),
        (ccxt.RequestTimeout("x"), True, UnknownOutcome),
        (ccxt.RequestTimeout("x"), False, Temporary),
        (ccxt.ExchangeNotAvailable("x"), True, UnknownOutcome),
        (ccxt.DDoSProtection("x"), False, RateLimited),
        (ccxt.InvalidNonce("x"), False, Temporary),
    ],
)
def test_ccxt_errors_translate_into_the_bots_hierarchy(exc: Exception, writing: bool, kind: type) -> None:
    assert type(translate(exc, None, writing)) is kind


async def test_reads_retry_temporary_errors_honouring_retry_after() -> None:
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RateLimited("429", retry_after=0.01)
        if len(calls) == 2:
            raise Temporary("timeout")
        return "ok"

    assert await read_with_retry(flaky) == "ok" and len(calls) == 3


async def test_reads_never_retry_rejections() -> None:
    calls: list[int] = []

    async def rejected() -> str:
        calls.append(1)
        raise Rejected("-2019")

    with pytest.raises(Rejected):
        await read_with_retry(rejected)
    assert len(calls) == 1


def test_sample_configs_validate_and_secrets_stay_out_of_repr() -> None:
    environ = {f"{n}_API_{k}": f"value-{n}-{k}" for n in ("LEAD", "ALICE", "BOB", "CAROL") for k in ("KEY", "SECRET")}
    for name in ("demo.toml", "example.toml", "spot-example.toml"):
        settings = load_settings(ROOT / "config" / name, environ)
        assert isinstance(settings, Settings)
        assert "value-LEAD-SECRET" not in repr(settings) and "value-LEAD-SECRET" not in str(settings)


def test_live_is_refused_without_allow_live(tmp_path: Path) -> None:
    text = (
        (ROOT / "config/example.toml")
        .read_text()
        .replace('environment = "demo"           #', 'environment = "live"  #', 1)
    )
    path = tmp_path / "live.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(
            path,
            {
                "LEAD_API_KEY": "k",
                "LEAD_API_SECRET": "s",
                "ALICE_API_KEY": "k",
                "ALICE_API_SECRET": "s",
                "BOB_API_KEY": "k",
                "BOB_API_SECRET": "s",
            },
        )
    assert "allow_live" in str(caught.value)


def test_bad_toml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[bot\nstate_dir=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(path, {})

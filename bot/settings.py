"""The daemon's configuration: one TOML file (SPEC section 8), validated by pydantic-settings.

Secrets never live in the file: it names the environment variables that hold them.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from bot.core.spot import MIN_SPOT_INVESTMENT

Environment = Literal["demo", "testnet", "live", "paper"]
# reconciliation reads every follower's positions and orders: more often than this would be polling
MIN_RECONCILE_INTERVAL_S = 5.0
Market = Literal["futures", "spot"]
# one daemon copies one market type (SPEC 11): the ccxt exchange ids each one trades through
MARKET_EXCHANGES: dict[str, tuple[str, ...]] = {"futures": ("binanceusdm",), "spot": ("binance",)}
SUPPORTED_EXCHANGES = tuple(e for exchanges in MARKET_EXCHANGES.values() for e in exchanges)


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ConfigError(Exception):
    """A configuration that cannot run: each problem with the field's path and the reason."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{path}: {reason}" for path, reason in problems))
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Credentials(_Strict):
    api_key: SecretStr
    api_secret: SecretStr


class AccountSettings(_Strict):
    """How to reach one exchange account. `credentials` is filled from the named environment variables."""

    name: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
    exchange: str = "binanceusdm"  # when left out: the one `bot.market` trades through
    environment: Environment = "demo"
    api_url: str = ""
    api_key_env: str = Field(min_length=1)
    api_secret_env: str = Field(min_length=1)
    email: str = ""
    credentials: Credentials | None = None

    @field_validator("exchange")
    @classmethod
    def _supported(cls, value: str) -> str:
        if value not in SUPPORTED_EXCHANGES:
            raise ValueError(f"exchange {value!r} is not supported yet (supported: {', '.join(SUPPORTED_EXCHANGES)})")
        return value

    @model_validator(mode="after")
    def _paper_needs_url(self) -> AccountSettings:
        if self.environment == "paper" and not self.api_url.startswith(("http://", "https://")):
            raise ValueError("api_url (http:// or https://) is required for environment 'paper'")
        if self.environment == "paper" and not is_loopback(self.api_url):
            raise ValueError(
                f"api_url {self.api_url!r}: environment 'paper' is the paper exchange on this machine (loopback);"
                " a remote exchange is 'demo', 'testnet' or 'live' (which needs bot.allow_live)"
            )
        return self


class FollowerSettings(AccountSettings):
    investment: Decimal = Field(gt=0)
    total_stop_loss_pct: Decimal = Field(default=Decimal(30), gt=0, le=100)
    copy_existing: bool = True
    max_slippage_pct: Decimal = Field(default=Decimal("0.5"), ge=0, le=100)
    symbols: tuple[str, ...] = ()


class BotSettings(_Strict):
    market: Market = "futures"
    state_dir: Path = Path("var")
    poll_interval_s: float = Field(default=1.0, gt=0, le=3600)
    reconcile_interval_s: float = Field(default=30, ge=MIN_RECONCILE_INTERVAL_S)
    heartbeat_interval_s: float = Field(default=30, gt=0)
    lead_source: Literal["poll", "stream"] = "poll"
    log_format: Literal["json", "console"] = "json"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    allow_live: bool = False
    shutdown_grace_s: float = Field(default=10, gt=0)
    request_timeout_ms: int = Field(default=10_000, ge=100, le=120_000)
    lead_auth_grace_s: float = Field(default=300, gt=0)
    max_weight_share: float = Field(default=0.5, gt=0, le=1)  # of the exchange's per-IP request weight (SPEC 12)


class ProtectionSettings(_Strict):
    enabled: bool = True
    min_lead_equity: Decimal = Field(default=Decimal(10000), ge=0)
    collateral_ratio: Decimal = Field(default=Decimal("0.20"), gt=0, le=1)
    pause_utilization: Decimal = Field(default=Decimal("0.95"), gt=0, le=1)
    profit_share: Decimal = Field(default=Decimal("0.70"), ge=0, le=1)
    fee_rebate: Decimal = Field(default=Decimal("0.70"), ge=0, le=1)
    max_leverage: Decimal = Field(default=Decimal(5), ge=1, le=125)

    @field_validator("max_leverage")
    @classmethod
    def _whole(cls, value: Decimal) -> Decimal:
        if value != value.to_integral_value():
            raise ValueError("max_leverage must be a whole number (exchanges set leverage in whole steps)")
        return value

    @model_validator(mode="after")
    def _protected_bounds(self) -> ProtectionSettings:
        if self.enabled and not Decimal("0.60") <= self.profit_share <= Decimal("0.80"):
            raise ValueError("profit_share must lie in 0.60..0.80 when protection is enabled")
        if self.enabled and self.max_leverage > 5:
            raise ValueError("max_leverage must lie in 1..5 when protection is enabled")
        return self


class SettlementSettings(_Strict):
    timezone: str = "UTC"
    cycle_seconds: int | None = Field(default=None, gt=0)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="forbid", frozen=True)

    bot: BotSettings = Field(default_factory=BotSettings)
    lead: AccountSettings | None = None
    protection: ProtectionSettings = Field(default_factory=ProtectionSettings)
    settlement: SettlementSettings = Field(default_factory=SettlementSettings)
    followers: tuple[FollowerSettings, ...] = ()
    treasury: AccountSettings | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # the TOML file is the only source; secrets come in through resolve_secrets

    @model_validator(mode="before")
    @classmethod
    def _market_exchange(cls, data: Any) -> Any:
        """An account that does not name its exchange trades through the one of the daemon's market."""
        if not isinstance(data, dict) or not isinstance(data.get("bot", {}), dict):
            return data
        market = data.get("bot", {}).get("market", "futures")
        exchange = MARKET_EXCHANGES.get(market, ("binanceusdm",))[0]

        def filled(account: Any) -> Any:
            return {"exchange": exchange, **account} if isinstance(account, dict) else account

        out = dict(data)
        for section in ("lead", "treasury"):
            if section in out:
                out[section] = filled(out[section])
        if isinstance(out.get("followers"), list | tuple):
            out["followers"] = [filled(f) for f in out["followers"]]
        return out

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        names = [a.name for a in self.accounts()]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"account names must be unique: {', '.join(duplicates)}")
        if self.treasury is not None:
            missing = [a.name for a in self.accounts() if not a.email]
            if missing:
                raise ValueError(f"with a treasury every account needs its email for transfers: {', '.join(missing)}")
        live = [a.name for a in self.accounts() if a.environment == "live"]
        if live and not self.bot.allow_live:
            raise ValueError(f"environment 'live' is refused unless bot.allow_live = true ({', '.join(live)})")
        return self

    def accounts(self) -> tuple[AccountSettings, ...]:
        """The trading accounts: the lead (when configured) and the followers."""
        return (self.lead, *self.followers) if self.lead is not None else self.followers


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    out = []
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"]) or "(file)"
        out.append((path, error["msg"].removeprefix("Value error, ")))
    return out


def load_settings(path: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Reads and validates the file, then the secrets its accounts name. Raises ConfigError."""
    if not path.is_file():
        raise ConfigError([("(file)", f"{path} does not exist or is not a file")])
    try:
        data: dict[str, Any] = TomlConfigSettingsSource(Settings, toml_file=path)()
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([("(file)", f"not valid TOML: {exc}")]) from None
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_problems(exc)) from None
    problems = market_conflicts(settings)
    if problems:
        raise ConfigError(problems)
    settings = resolve_secrets(settings, os.environ if environ is None else environ)
    problems = account_conflicts(settings)
    if problems:
        raise ConfigError(problems)
    return settings


def _paths(settings: Settings) -> list[tuple[str, AccountSettings]]:
    out: list[tuple[str, AccountSettings]] = [("lead", settings.lead)] if settings.lead is not None else []
    out += [(f"followers.{i}", f) for i, f in enumerate(settings.followers)]
    return out + ([("treasury", settings.treasury)] if settings.treasury is not None else [])


def market_conflicts(settings: Settings) -> list[tuple[str, str]]:
    """Settings that do not belong to the daemon's market (SPEC 11): an account of the other market type, a
    spot follower's investment under the minimum, futures-only settings on a spot daemon. Each with its path."""
    market = settings.bot.market
    problems: list[tuple[str, str]] = []
    for path, account in _paths(settings):
        if account.exchange not in MARKET_EXCHANGES[market]:
            other = next(m for m, exchanges in MARKET_EXCHANGES.items() if account.exchange in exchanges)
            problems.append(
                (
                    f"{path}.exchange",
                    f"{account.exchange!r} trades {other}, this daemon copies {market} (bot.market): one daemon"
                    " copies one market type",
                )
            )
    if market == "spot":
        for index, follower in enumerate(settings.followers):
            if follower.investment < MIN_SPOT_INVESTMENT:
                problems.append(
                    (f"followers.{index}.investment", f"a spot copy needs at least {MIN_SPOT_INVESTMENT} USDT")
                )
        if "max_leverage" in settings.protection.model_fields_set:
            problems.append(("protection.max_leverage", "futures only: spot has no leverage (the cash cap applies)"))
    return problems


def account_conflicts(settings: Settings) -> list[tuple[str, str]]:
    """Accounts that could trade the wrong account: a key variable or key value shared by two accounts, a
    treasury named like a trading account. Each with the field's path."""
    problems: list[tuple[str, str]] = []
    accounts = _paths(settings)
    for index, (path, account) in enumerate(accounts):
        for other_path, other in accounts[:index]:
            for field in ("api_key_env", "api_secret_env"):
                if getattr(account, field) in (other.api_key_env, other.api_secret_env):
                    problems.append((f"{path}.{field}", f"{getattr(account, field)} is also {other_path}'s"))
            if account.credentials is not None and other.credentials is not None:
                mine = {
                    account.credentials.api_key.get_secret_value(),
                    account.credentials.api_secret.get_secret_value(),
                }
                theirs = {other.credentials.api_key.get_secret_value(), other.credentials.api_secret.get_secret_value()}
                if mine & theirs - {""}:
                    problems.append((f"{path}.api_key_env", f"its key or secret is also {other_path}'s"))
    if settings.treasury is not None and settings.treasury.name in {a.name for a in settings.accounts()}:
        problems.append(("treasury.name", f"{settings.treasury.name!r} is also a trading account's name"))
    return problems


def resolve_secrets(settings: Settings, environ: Mapping[str, str]) -> Settings:
    problems: list[tuple[str, str]] = []

    def fill(account: AccountSettings, path: str) -> AccountSettings:
        values = {}
        for field in ("api_key_env", "api_secret_env"):
            variable = getattr(account, field)
            if not environ.get(variable):
                problems.append((f"{path}.{field}", f"environment variable {variable} is not set"))
            values[field.removesuffix("_env")] = environ.get(variable, "")
        creds = Credentials(api_key=SecretStr(values["api_key"]), api_secret=SecretStr(values["api_secret"]))
        return account.model_copy(update={"credentials": creds})

    lead = fill(settings.lead, "lead") if settings.lead is not None else None
    treasury = fill(settings.treasury, "treasury") if settings.treasury is not None else None
    followers = tuple(fill(f, f"followers.{i}") for i, f in enumerate(settings.followers))
    if problems:
        raise ConfigError(problems)
    return settings.model_copy(update={"lead": lead, "followers": followers, "treasury": treasury})


def summary(settings: Settings) -> str:
    """A human summary without secrets, for `bot check-config`."""
    lines = [
        f"market: {settings.bot.market}   state_dir: {settings.bot.state_dir}   "
        f"lead_source: {settings.bot.lead_source}   "
        f"poll: {settings.bot.poll_interval_s}s   reconcile: {settings.bot.reconcile_interval_s}s",
        _lead_line(settings),
        f"protection: {'on' if settings.protection.enabled else 'off'}   "
        + ("" if settings.bot.market == "spot" else f"max_leverage: {settings.protection.max_leverage}   ")
        + f"min_lead_equity: {settings.protection.min_lead_equity}",
        f"followers: {len(settings.followers)}   treasury: "
        + (
            f"{settings.treasury.name} (transfers executed)"
            if settings.treasury
            else "none (transfers recorded as due)"
        ),
    ]
    for f in settings.followers:
        symbols = ",".join(f.symbols) or "all"
        lines.append(
            f"  - {f.name}: investment {f.investment} USDT, stop loss {f.total_stop_loss_pct}%, "
            f"slippage {f.max_slippage_pct}%, copy_existing {str(f.copy_existing).lower()}, symbols {symbols} "
            f"({f.exchange}, {f.environment})"
        )
    return "\n".join(lines)


def _lead_line(settings: Settings) -> str:
    lead = settings.lead
    if lead is None:
        return "lead: none (copying ends: every follower's positions are closed)"
    return (
        f"lead: {lead.name} ({lead.exchange}, {lead.environment}" + (f", {lead.api_url}" if lead.api_url else "") + ")"
    )

"""Builds ccxt clients for a Binance compatible base URL (the paper exchange, or a relay): USDⓈ-M futures
(`binanceusdm`) and spot (`binance`).

This is the one place that points ccxt at such a URL; the daemon, tests and benchmarks all use it.
"""

from __future__ import annotations

from typing import Any

import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro

from bot.venue.http import SharedHttp

# Every REST entry of ccxt's binanceusdm that a USDⓈ-M account reaches, and the path each maps to.
_REST_PATHS = {
    "fapiPublic": "/fapi/v1",
    "fapiPublicV2": "/fapi/v2",
    "fapiPublicV3": "/fapi/v3",
    "fapiPrivate": "/fapi/v1",
    "fapiPrivateV2": "/fapi/v2",
    "fapiPrivateV3": "/fapi/v3",
    "fapiData": "/futures/data",
    "sapi": "/sapi/v1",
    "sapiV2": "/sapi/v2",
    "sapiV3": "/sapi/v3",
    "sapiV4": "/sapi/v4",
}


# Every REST entry of ccxt's binance (spot) that a spot account reaches.
_SPOT_REST_PATHS = {
    "public": "/api/v3",
    "private": "/api/v3",
    "v1": "/api/v1",
    "sapi": "/sapi/v1",
    "sapiV2": "/sapi/v2",
    "sapiV3": "/sapi/v3",
    "sapiV4": "/sapi/v4",
}


# a spot daemon loads spot markets only, and not the margin pairs ccxt reads by default with a key
SPOT_OPTIONS: dict[str, Any] = {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}, "fetchMargins": False}


def _ws_url(base_url: str, path: str = "/ws") -> str:
    scheme, rest = base_url.split("://", 1)
    return ("wss" if scheme == "https" else "ws") + "://" + rest + path


def _build(
    exchange_id: str,
    paths: dict[str, str],
    base_url: str,
    api_key: str | None,
    api_secret: str | None,
    *,
    stream: bool,
    timeout_ms: int,
    enable_rate_limit: bool,
    http: SharedHttp | None,
    options: dict[str, Any] | None = None,
) -> tuple[Any, str]:
    """A ccxt client (ccxt.pro when `stream`) whose REST entries in `paths` point at `base_url`; the base URL."""
    base_url = base_url.rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        raise ValueError(f"base URL must start with http:// or https://, got {base_url!r}")
    config: dict[str, Any] = {
        "timeout": timeout_ms,
        "enableRateLimit": enable_rate_limit,
        "options": {"fetchCurrencies": False, "maxRetriesOnFailure": 0, "adjustForTimeDifference": False}
        | (options or {}),
    }
    if http is not None:
        config["session"] = http.session
    if api_key is not None:
        config["apiKey"] = api_key
    if api_secret is not None:
        config["secret"] = api_secret
    exchange = getattr(ccxt_pro if stream else ccxt_async, exchange_id)(config)
    if http is not None:
        exchange.ssl_context = http.ssl_context
    api = exchange.urls["api"]
    for name, path in paths.items():
        api[name] = base_url + path
    return exchange, base_url


def linear_error_table(exchange: Any) -> None:
    """Applies ccxt's USDⓈ-M error table to every URL: ccxt chooses it by Binance's host names only."""
    linear = exchange.exceptions.get("linear", {})
    exchange.exceptions["exact"] = {**exchange.exceptions["exact"], **linear.get("exact", {})}
    exchange.exceptions["broad"] = {**exchange.exceptions["broad"], **linear.get("broad", {})}


def build_binanceusdm(
    base_url: str,
    api_key: str | None = None,
    api_secret: str | None = None,
    *,
    stream: bool = False,
    timeout_ms: int = 10_000,
    enable_rate_limit: bool = False,
    http: SharedHttp | None = None,
) -> Any:
    """A `binanceusdm` client (ccxt.pro when `stream`) whose every fapi, sapi and websocket URL is `base_url`.

    ccxt's own retries stay off and its rate limiter is off unless asked for: the bot owns both.
    """
    exchange, base_url = _build(
        "binanceusdm",
        _REST_PATHS,
        base_url,
        api_key,
        api_secret,
        stream=stream,
        timeout_ms=timeout_ms,
        enable_rate_limit=enable_rate_limit,
        http=http,
    )
    if stream:
        api = exchange.urls["api"]
        api["ws"] = {**api["ws"], "linear": _ws_url(base_url)}
    linear_error_table(exchange)
    return exchange


def build_binance_spot(
    base_url: str,
    api_key: str | None = None,
    api_secret: str | None = None,
    *,
    stream: bool = False,
    timeout_ms: int = 10_000,
    enable_rate_limit: bool = False,
    http: SharedHttp | None = None,
) -> Any:
    """A `binance` spot client (ccxt.pro when `stream`) whose every REST, stream and websocket-API URL is
    `base_url`; it loads spot markets only. ccxt's retries stay off, its rate limiter off unless asked for."""
    exchange, base_url = _build(
        "binance",
        _SPOT_REST_PATHS,
        base_url,
        api_key,
        api_secret,
        stream=stream,
        timeout_ms=timeout_ms,
        enable_rate_limit=enable_rate_limit,
        http=http,
        options=SPOT_OPTIONS,
    )
    api = exchange.urls["api"]
    if stream:
        ws_api = {**api["ws"]["ws-api"], "spot": _ws_url(base_url, "/ws-api/v3")}
        api["ws"] = {**api["ws"], "spot": _ws_url(base_url), "ws-api": ws_api}
    return exchange

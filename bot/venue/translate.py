"""ccxt's exceptions translated into the bot's own (`errors.py`), at the edge: whether an order's outcome is
unknown, a read worth retrying, a refusal (with Binance's code, and whether it may pass later), a key gone."""

from __future__ import annotations

import re
from typing import Any

import ccxt.async_support as ccxt

from bot.venue.errors import Fatal, NotFound, RateLimited, Rejected, Temporary, UnknownOutcome, VenueError


def retry_after(client: Any) -> float | None:
    """The Retry-After of the client's last answer, in seconds (None: none, or not a number)."""
    headers = getattr(client, "last_response_headers", None) or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


# Binance refusals that may pass later with nothing changed but the balance: a short account, a short lead
BALANCE_CODES = frozenset({-2010, -2018, -2019, -8105})
_CODE = re.compile(r'"code"\s*:\s*(-?\d+)')


def error_code(exc: Exception) -> int | None:
    """The exchange's error code in a ccxt error's message (ccxt passes Binance's JSON body through)."""
    found = _CODE.search(str(exc))
    return int(found.group(1)) if found else None


def translate(exc: Exception, client: Any, writing: bool) -> VenueError:
    """ccxt's exception classes into ours. Messages never carry secrets (ccxt puts none in them)."""
    message = f"{type(exc).__name__}: {exc}"[:500]
    if isinstance(exc, ccxt.AuthenticationError | ccxt.PermissionDenied | ccxt.AccountSuspended):
        return Fatal(message)
    if isinstance(exc, ccxt.OrderNotFound):
        return NotFound(message)
    if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
        wait = retry_after(client)
        return UnknownOutcome(message, wait) if writing else RateLimited(message, wait)
    if isinstance(exc, ccxt.InvalidNonce):
        return Temporary(message)  # a clock off by more than recvWindow: not an answer about the order
    if isinstance(exc, ccxt.NetworkError | ccxt.BadResponse | ccxt.NullResponse | ccxt.OperationFailed):
        return UnknownOutcome(message) if writing else Temporary(message)
    if isinstance(exc, ccxt.BaseError):
        code = error_code(exc)
        return Rejected(message, code, retryable=isinstance(exc, ccxt.InsufficientFunds) or code in BALANCE_CODES)
    return UnknownOutcome(message) if writing else Temporary(message)

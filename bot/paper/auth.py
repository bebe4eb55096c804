"""Binance's request authentication for the paper exchange: who is calling (API key, HMAC-SHA256 signature,
timestamp within recvWindow), and the request as the handlers see it (`Call`: params merged, typed getters that
refuse as Binance refuses)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import Enum
from urllib.parse import parse_qsl

from aiohttp import web

from bot.paper import errors
from bot.paper.ledger import Ledger
from bot.paper.state import Account


class Security(Enum):
    NONE = "none"
    API_KEY = "api_key"  # listen key endpoints: the key, no signature
    SIGNED = "signed"
    MASTER = "master"  # signed by the master account's key


@dataclass(slots=True)
class Call:
    """One request as the handlers see it: merged params and the authenticated account."""

    params: dict[str, str]
    account: Account | None
    queue_s: float | None = None  # an order that waits this long in the matching engine (fault injection)

    def get(self, name: str) -> str | None:
        value = self.params.get(name)
        return value if value not in (None, "") else None

    def need(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise errors.mandatory(name)
        return value

    def decimal(self, name: str) -> Decimal | None:
        value = self.get(name)
        if value is None:
            return None
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise errors.illegal(name, "decimal") from None
        if not number.is_finite():
            raise errors.illegal(name, "decimal")
        return number

    def flag(self, name: str) -> bool:
        value = (self.get(name) or "false").lower()
        if value not in ("true", "false"):
            raise errors.illegal(name, "true/false")
        return value == "true"

    def int(self, name: str, default: int) -> int:
        value = self.get(name)
        if value is None:
            return default
        if not value.lstrip("-").isdigit():
            raise errors.illegal(name, "integer")
        return int(value)

    @property
    def me(self) -> Account:
        assert self.account is not None
        return self.account


def _split_signature(raw: str) -> tuple[str, str | None]:
    """Removes `signature=...` from a raw query or body; returns what was signed and the signature."""
    if not raw:
        return "", None
    kept, signature = [], None
    for part in raw.split("&"):
        if part.startswith("signature="):
            signature = part[len("signature=") :]
        else:
            kept.append(part)
    return "&".join(kept), signature


async def authenticate(request: web.Request, security: Security, ledger: Ledger, master_key: str | None) -> Call:
    """Binance's checks in Binance's order: the key's format and existence (and the master's, for sub-account
    endpoints), the HMAC-SHA256 signature of query and body, the timestamp within recvWindow."""
    raw_query = request.rel_url.raw_query_string
    raw_body = await request.text() if request.can_read_body else ""
    params = dict(parse_qsl(raw_query, keep_blank_values=True))
    params.update(parse_qsl(raw_body, keep_blank_values=True))
    if security is Security.NONE:
        return Call(params, None)
    api_key = request.headers.get("X-MBX-APIKEY")
    if not api_key:
        raise errors.api_key_format()
    account = ledger.by_key(api_key)
    if account is None:
        raise errors.invalid_api_key()
    if security is Security.MASTER and api_key != master_key:
        raise errors.invalid_api_key()
    if security is Security.API_KEY:
        return Call(params, account)
    signed_query, sig_q = _split_signature(raw_query)
    signed_body, sig_b = _split_signature(raw_body)
    signature = sig_q or sig_b
    if signature is None:
        raise errors.mandatory("signature")
    expected = hmac.new(account.api_secret.encode(), (signed_query + signed_body).encode(), hashlib.sha256)
    if not hmac.compare_digest(expected.hexdigest(), signature.lower()):
        raise errors.bad_signature()
    _check_timestamp(params, ledger.clock_ms())
    params.pop("signature", None)
    return Call(params, account)


def _check_timestamp(params: dict[str, str], now: int) -> None:
    stamp = params.get("timestamp", "")
    if not stamp.isdigit():
        raise errors.mandatory("timestamp")
    window = params.get("recvWindow", "5000")
    if not window.isdigit():
        raise errors.illegal("recvWindow", "integer")
    if int(window) > 60000:
        raise errors.BinanceError(-1131, "recvWindow must be less than 60000")
    if not (int(stamp) < now + 1000 and now - int(stamp) <= int(window)):
        raise errors.outside_recv_window()

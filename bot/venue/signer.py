"""The copy path's one request, a new order (POST order), signed exactly as ccxt signs it and sent on pooled
keep-alive connections (`http1.py`); the answer and any error go through the ccxt client's own error handling, so
a refusal raises the very ccxt exception (class and message) that ccxt's path raises.

Why: with hundreds of followers copying at once, ccxt's generic request path (the implicit API method, fetch2,
sign, fetch) took a seventh of the daemon's CPU, and aiohttp's client a third (issue 12's profiles).
Everything else still goes through ccxt. A key that is not an HMAC secret (RSA, Ed25519) or a client set up with
a proxy is left to ccxt; `tests/unit/test_signer.py` checks the signature byte for byte against ccxt's own.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import ccxt.async_support as ccxt

from bot.venue.http1 import Origins

# the characters `quote` never escapes: a query of only these is its own encoding
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")
# what Binance's handle_errors in ccxt inspects in an answer (`success`, `msg`, `code`); a 200 answer without
# any of them passes it untouched, as it passes handle_http_status_code
_ERROR_KEYS = frozenset({"success", "msg", "code"})

_PROXIES = (
    "proxyUrl", "proxy_url", "httpProxy", "http_proxy", "httpsProxy", "https_proxy", "socksProxy", "socks_proxy",
    "aiohttp_proxy", "proxyUrlCallback", "proxy_url_callback",
)  # fmt: skip


class OrderSigner:
    """POST `<api>/order` for one ccxt Binance client (`api`: `fapiPrivate` for USDⓈ-M, `private` for spot)."""

    def __init__(self, client: Any, api: str, origins: Origins | None = None) -> None:
        self._client = client
        self.url = f"{client.urls['api'][api]}/order"
        self._secret = str(client.secret).encode()
        headers = {"X-MBX-APIKEY": client.apiKey, "Content-Type": "application/x-www-form-urlencoded"}
        self.headers: dict[str, str] = client.prepare_request_headers(headers)  # User-Agent etc., as ccxt's fetch
        self._timeout_s = client.timeout / 1000
        self._own: Origins | None = None
        if origins is None:  # connections of its own (closed with the venue), when the process shares none
            origins = self._own = Origins()
        self._origin = origins.for_url(self.url)
        self._head = self._origin.head("POST", urlsplit(self.url).path, self.headers)

    @staticmethod
    def usable(client: Any) -> bool:
        """An HMAC secret, no proxy, TLS verified: the case this signer reproduces (the others stay with ccxt)."""
        secret = str(getattr(client, "secret", "") or "")
        plain = not any(getattr(client, a, None) for a in _PROXIES) and getattr(client, "verify", True) is not False
        return bool(secret) and "PRIVATE KEY" not in secret and plain

    def body(self, params: Mapping[str, str], timestamp: int) -> str:
        """ccxt's query: `timestamp` first, then the parameters in their order, then the configured recvWindow;
        percent-encoded with `quote`, and the hex HMAC-SHA256 of it appended as `signature`."""
        fields: dict[str, Any] = {"timestamp": timestamp, **params}
        recv_window = self._client.safe_integer(self._client.options, "recvWindow")
        if recv_window is not None:
            fields["recvWindow"] = recv_window
        pairs = [(str(k), str(v)) for k, v in fields.items()]
        if _UNRESERVED.fullmatch("".join(k + v for k, v in pairs)):  # every key and value: one match for all
            query = "&".join(f"{k}={v}" for k, v in pairs)  # what `quote` leaves as it is (the usual order)
        else:
            query = urlencode(pairs, quote_via=quote)
        signature = hmac.new(self._secret, query.encode(), hashlib.sha256).hexdigest()
        return f"{query}&signature={signature}"

    async def post(self, params: Mapping[str, str]) -> Any:
        client = self._client
        body = self.body(params, client.nonce())
        details = f"{client.id} POST {self.url}"
        try:
            answer = await self._origin.send(self._head, body.encode(), self._timeout_s)
        except TimeoutError as exc:  # before OSError: a TimeoutError is one
            raise ccxt.RequestTimeout(details) from exc
        except OSError as exc:  # refused, unreachable, DNS, TLS, or the answer cut short (ConnectionLost)
            raise ccxt.ExchangeNotAvailable(f"{details} {type(exc).__name__}") from exc
        if client.enableLastResponseHeaders:
            client.last_response_headers = answer.headers
        text = answer.text.strip()
        parsed = client.parse_json(text)
        if answer.status == 200 and isinstance(parsed, dict) and not parsed.keys() & _ERROR_KEYS:
            return parsed  # nothing ccxt's error handling would look at: an order's answer
        status, reason, headers = answer.status, answer.reason, answer.headers
        client.handle_errors(status, reason, self.url, "POST", headers, text, parsed, self.headers, body)
        client.handle_http_status_code(status, reason, self.url, "POST", text)
        return parsed

    def close(self) -> None:
        """Closes the connections when they are this signer's own (not shared through `Origins`)."""
        if self._own is not None:
            self._own.close()

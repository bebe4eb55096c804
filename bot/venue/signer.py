"""The copy path's one request, a new order (POST order), signed exactly as ccxt signs it and sent on the ccxt
client's own HTTP session; the answer and any error go through the client's own error handling, so a refusal
raises the very ccxt exception (class and message) that ccxt's path raises.

Why: with hundreds of followers copying at once, ccxt's generic request path (the implicit API method, fetch2,
sign, fetch) took a seventh of the daemon's CPU, more than the HTTP request itself (issue 12's profile).
Everything else still goes through ccxt. A key that is not an HMAC secret (RSA, Ed25519) or a client set up with
a proxy is left to ccxt; `tests/unit/test_signer.py` checks the signature byte for byte against ccxt's own.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import ccxt.async_support as ccxt
import yarl

_PROXIES = (
    "proxyUrl", "proxy_url", "httpProxy", "http_proxy", "httpsProxy", "https_proxy", "socksProxy", "socks_proxy",
    "aiohttp_proxy", "proxyUrlCallback", "proxy_url_callback",
)  # fmt: skip


class OrderSigner:
    """POST `<api>/order` for one ccxt Binance client (`api`: `fapiPrivate` for USDⓈ-M, `private` for spot)."""

    def __init__(self, client: Any, api: str) -> None:
        self._client = client
        self.url = f"{client.urls['api'][api]}/order"
        self._target = yarl.URL(self.url, encoded=True)
        self._secret = str(client.secret).encode()
        headers = {"X-MBX-APIKEY": client.apiKey, "Content-Type": "application/x-www-form-urlencoded"}
        self.headers: dict[str, str] = client.prepare_request_headers(headers)  # User-Agent etc., as ccxt's fetch
        seconds = client.timeout / 1000
        self._timeout = aiohttp.ClientTimeout(total=seconds, sock_connect=seconds, sock_read=seconds)

    @staticmethod
    def usable(client: Any) -> bool:
        """An HMAC secret and no proxy: the case this signer reproduces (the others stay with ccxt)."""
        secret = str(getattr(client, "secret", "") or "")
        return bool(secret) and "PRIVATE KEY" not in secret and not any(getattr(client, a, None) for a in _PROXIES)

    def body(self, params: Mapping[str, str], timestamp: int) -> str:
        """ccxt's query: `timestamp` first, then the parameters in their order, then the configured recvWindow;
        percent-encoded with `quote`, and the hex HMAC-SHA256 of it appended as `signature`."""
        fields: dict[str, Any] = {"timestamp": timestamp, **params}
        recv_window = self._client.safe_integer(self._client.options, "recvWindow")
        if recv_window is not None:
            fields["recvWindow"] = recv_window
        query = urlencode(fields, quote_via=quote)
        signature = hmac.new(self._secret, query.encode(), hashlib.sha256).hexdigest()
        return f"{query}&signature={signature}"

    async def post(self, params: Mapping[str, str]) -> Any:
        client = self._client
        if client.session is None:
            client.open()
        body = self.body(params, client.nonce())
        details = f"{client.id} POST {self.url}"
        try:
            async with client.session.post(
                self._target, data=body.encode(), headers=self.headers, timeout=self._timeout
            ) as response:
                text = (await response.text(errors="replace")).strip()
                headers: dict[str, str] = {}
                for name, value in response.headers.items():
                    headers[name] = f"{headers[name]}, {value}" if name in headers else value
                status, reason = response.status, response.reason or ""
        except socket.gaierror as exc:
            raise ccxt.ExchangeNotAvailable(details) from exc
        except TimeoutError as exc:
            raise ccxt.RequestTimeout(details) from exc
        except aiohttp.ClientConnectionError as exc:
            raise ccxt.ExchangeNotAvailable(details) from exc
        except aiohttp.ClientError as exc:
            raise ccxt.ExchangeError(details) from exc
        if client.enableLastResponseHeaders:
            client.last_response_headers = headers
        answer = client.parse_json(text)
        client.handle_errors(status, reason, self.url, "POST", headers, text, answer, self.headers, body)
        client.handle_http_status_code(status, reason, self.url, "POST", text)
        return answer

"""One HTTP session and one TLS context for every ccxt client of the process, and the order path's own
keep-alive connections (`http1.py`) on the same TLS context.

ccxt builds a TLS context (loading the CA bundle, ~25 ms of CPU) and a connection pool per client; with
hundreds of follower accounts that is most of start-up and a pool per account. Requests carry their own
API key headers, so accounts can share one pool safely.
"""

from __future__ import annotations

import ssl

import aiohttp
import certifi

from bot.venue.http1 import Origins


class SharedHttp:
    def __init__(self) -> None:
        self.ssl_context = ssl.create_default_context(cafile=certifi.where())
        self._session: aiohttp.ClientSession | None = None
        self.orders = Origins(self.ssl_context)  # the copy path's own keep-alive connections (`http1.py`)

    @property
    def session(self) -> aiohttp.ClientSession:
        """Created on first use, inside the running event loop."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, ssl=self.ssl_context, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def close(self) -> None:
        self.orders.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

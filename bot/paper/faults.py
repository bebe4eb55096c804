"""Fault injection: the next N requests matching a path answer 429 / 418 / 503 or a Binance rejection, arrive
late, are cut, or (orders) wait in the matching engine before they execute."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Literal

from aiohttp import web

from bot.paper import errors

FaultKind = Literal["429", "418", "503", "delay", "drop", "reject", "queue"]
KINDS = ("429", "418", "503", "delay", "drop", "reject", "queue")
# set on a request whose order waits `delay_s` in the matching engine
QUEUE_KEY = web.RequestKey("paper_queue_s", float)
# what Binance answers a market order in a fast market: the default of a "reject" fault
PERCENT_PRICE = (-4131, "The counterparty's best price does not meet the PERCENT_PRICE filter limit.")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(slots=True)
class Fault:
    path: str
    kind: FaultKind
    count: int = 1
    method: str | None = None
    retry_after: int = 1
    delay_s: float = 0.0
    execute: bool | None = None  # default: True for delay and drop, False for the error answers
    api_key: str | None = None  # only requests signed with this key (one account's), else any
    code: int = PERCENT_PRICE[0]  # a "reject": Binance's error code and message, HTTP 400
    msg: str = PERCENT_PRICE[1]

    @property
    def executes(self) -> bool:
        return self.execute if self.execute is not None else self.kind in ("delay", "drop", "queue")

    def matches(self, request: web.Request) -> bool:
        return (
            request.path == self.path
            and (self.method is None or self.method.upper() == request.method)
            and (self.api_key is None or request.headers.get("X-MBX-APIKEY") == self.api_key)
        )


class Faults:
    def __init__(self) -> None:
        self._pending: list[Fault] = []

    def add(self, fault: Fault) -> None:
        if fault.kind not in KINDS:
            raise ValueError(f"unknown fault kind {fault.kind!r}")
        if fault.count < 1:
            raise ValueError("count must be at least 1")
        self._pending.append(fault)

    def clear(self) -> None:
        self._pending.clear()

    def listing(self) -> list[dict[str, object]]:
        return [{**asdict(f), "api_key": "***" if f.api_key else None} for f in self._pending]

    def take(self, request: web.Request) -> Fault | None:
        for fault in self._pending:
            if fault.matches(request):
                fault.count -= 1
                if fault.count <= 0:
                    self._pending.remove(fault)
                return fault
        return None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        fault = self.take(request) if not request.path.startswith("/_paper/") else None
        if fault is None:
            return await handler(request)
        if fault.kind == "queue":
            request[QUEUE_KEY] = fault.delay_s
            return await handler(request)
        if fault.kind == "reject":
            return web.Response(
                status=400, text=json.dumps({"code": fault.code, "msg": fault.msg}), content_type="application/json"
            )
        response = await handler(request) if fault.executes else None
        if fault.kind == "delay":
            await asyncio.sleep(fault.delay_s)
            assert response is not None
            return response
        if fault.kind == "drop":
            if request.transport is not None:
                request.transport.abort()
            raise ConnectionResetError("paper exchange: connection dropped by fault injection")
        if fault.kind == "503":
            return web.Response(status=503, text="Service Unavailable", content_type="text/html")
        error = errors.too_many_requests() if fault.kind == "429" else errors.ip_banned()
        return web.Response(
            status=error.status,
            text=json.dumps(error.body()),
            content_type="application/json",
            headers={"Retry-After": str(fault.retry_after)},
        )

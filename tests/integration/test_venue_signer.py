"""The order signer against the paper exchange, beside ccxt's own path on the same account: the same answers,
and a refusal, a rate limit and a lost connection raise the same ccxt exceptions (class and message) and leave
the same response headers for the request budget."""

from __future__ import annotations

from typing import Any

import ccxt.async_support as ccxt
import pytest

from bot.venue.signer import OrderSigner
from tests.conftest import market_order
from tests.paper_harness import running_paper


async def both(client: Any, signer: OrderSigner, params: dict[str, str]) -> list[Any]:
    """ccxt's answer (or exception), then the signer's, to the same request with a different client order id."""
    out: list[Any] = []
    for send, suffix in ((client.fapiPrivatePostOrder, "a"), (signer.post, "b")):
        try:
            out.append(await send({**params, "newClientOrderId": params["newClientOrderId"] + suffix}))
        except ccxt.BaseError as exc:
            out.append(exc)
    return out


async def test_answers_and_errors_are_ccxts_own() -> None:
    async with running_paper() as paper:
        client = paper.client("alice")
        client.enableLastResponseHeaders = True
        signer = OrderSigner(client, "fapiPrivate")
        via_ccxt, via_signer = await both(client, signer, market_order("ok-"))
        assert via_signer["status"] == via_ccxt["status"] == "FILLED"
        assert via_signer.keys() == via_ccxt.keys()
        assert via_signer["executedQty"] == via_ccxt["executedQty"]
        assert "X-MBX-ORDER-COUNT-1M" in {k.upper() for k in client.last_response_headers}

        # a refusal by the exchange (margin: alice has 1000 USDT)
        refused = await both(client, signer, market_order("big-", "100"))
        assert [type(e) for e in refused] == [ccxt.InsufficientFunds] * 2
        assert str(refused[0]) == str(refused[1])

        # the connection cut: a network error (the outcome is unknown to the caller)
        cut: list[type[Exception]] = []
        for send in (client.fapiPrivatePostOrder, signer.post):
            await paper.control("POST", "/faults", {"path": "/fapi/v1/order", "kind": "drop"})
            with pytest.raises(ccxt.NetworkError) as caught:
                await send(market_order(f"cut-{len(cut)}"))
            cut.append(type(caught.value))
        assert cut[0] == cut[1]

        # a 429 with its Retry-After, for each path in turn (the second one from the exchange's own limiter:
        # after a 429 it answers 429 until the Retry-After has passed, as Binance does)
        limited: list[str | None] = []
        for send in (client.fapiPrivatePostOrder, signer.post):
            await paper.control("POST", "/faults", {"path": "/fapi/v1/order", "kind": "429", "retry_after": 7})
            with pytest.raises(ccxt.DDoSProtection) as caught:
                await send(market_order(f"rl-{len(limited)}"))
            limited.append(client.last_response_headers.get("Retry-After"))
            client.last_response_headers = {}
        assert limited[0] == "7" and limited[1] is not None and int(limited[1]) > 0

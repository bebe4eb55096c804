"""Signatures, timestamps and keys like Binance; injected faults as ccxt sees them."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from urllib.parse import urlencode

import ccxt.async_support as ccxt
import pytest

from tests.conftest import BTC
from tests.paper_harness import Paper


def signed(secret: str, params: dict[str, Any]) -> str:
    query = urlencode(params)
    return query + "&signature=" + hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()


async def _raw(paper: Paper, method: str, path: str, *, query: str = "", body: str = "", key: str | None = None) -> Any:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if key is not None:
        headers["X-MBX-APIKEY"] = key
    url = paper.url + path + ("?" + query if query else "")
    async with paper.session.request(method, url, data=body or None, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers


async def test_signature_over_query_string_and_over_form_body(paper: Paper) -> None:
    key, secret = paper.keys("alice")
    now = int(time.time() * 1000)
    status, body, _ = await _raw(paper, "GET", "/fapi/v3/account", query=signed(secret, {"timestamp": now}), key=key)
    assert status == 200 and body["totalWalletBalance"] == "1000.00000000"
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.002", "timestamp": now}
    status, body, _ = await _raw(paper, "POST", "/fapi/v1/order", body=signed(secret, order), key=key)
    assert status == 200 and body["status"] == "FILLED" and body["executedQty"] == "0.002"


async def test_tampered_body_is_a_bad_signature(paper: Paper) -> None:
    key, secret = paper.keys("alice")
    order = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "MARKET",
        "quantity": "0.002",
        "timestamp": int(time.time() * 1000),
    }
    tampered = signed(secret, order).replace("quantity=0.002", "quantity=0.020")
    status, body, _ = await _raw(paper, "POST", "/fapi/v1/order", body=tampered, key=key)
    assert (status, body["code"]) == (400, -1022)
    assert (await paper.state("alice"))["orders"] == []


async def test_unknown_key_missing_key_and_stale_timestamp(paper: Paper) -> None:
    key, secret = paper.keys("alice")
    query = signed(secret, {"timestamp": int(time.time() * 1000)})
    status, body, _ = await _raw(paper, "GET", "/fapi/v3/account", query=query, key="not-a-key-000")
    assert (status, body["code"]) == (401, -2015)
    status, body, _ = await _raw(paper, "GET", "/fapi/v3/account", query=query)
    assert (status, body["code"]) == (401, -2014)
    stale = signed(secret, {"timestamp": int(time.time() * 1000) - 6000, "recvWindow": 5000})
    status, body, _ = await _raw(paper, "GET", "/fapi/v3/account", query=stale, key=key)
    assert (status, body["code"]) == (400, -1021)
    future = signed(secret, {"timestamp": int(time.time() * 1000) + 5000})
    status, body, _ = await _raw(paper, "GET", "/fapi/v3/account", query=future, key=key)
    assert (status, body["code"]) == (400, -1021)


async def test_disabled_key_is_rejected_like_a_revoked_one(paper: Paper) -> None:
    ex = paper.client("alice")
    await ex.fetch_balance()
    await paper.control("POST", "/accounts/alice/key", {"enabled": False})
    with pytest.raises(ccxt.AuthenticationError):
        await paper.client("alice").fetch_balance()


@pytest.mark.parametrize(
    ("kind", "error"), [("429", ccxt.DDoSProtection), ("418", ccxt.DDoSProtection), ("503", ccxt.ExchangeNotAvailable)]
)
async def test_error_faults_answer_without_executing(paper: Paper, kind: str, error: type[Exception]) -> None:
    ex = paper.client("alice")
    await ex.load_markets()
    await paper.control(
        "POST", "/faults", {"path": "/fapi/v1/order", "method": "POST", "kind": kind, "count": 1, "retry_after": 3}
    )
    with pytest.raises(error):
        await ex.create_order(BTC, "market", "buy", 0.002, params={"clientOrderId": f"fault-{kind}"})
    await paper.control("DELETE", "/limits")  # an injected 429 is a 429: this client does not wait it out
    with pytest.raises(ccxt.OrderNotFound):
        await ex.fetch_order(None, BTC, params={"origClientOrderId": f"fault-{kind}"})
    again = await ex.create_order(BTC, "market", "buy", 0.002)  # the fault was for one request only
    assert again["status"] == "closed"


async def test_rate_limit_answer_carries_retry_after(paper: Paper) -> None:
    await paper.control("POST", "/faults", {"path": "/fapi/v1/time", "kind": "429", "retry_after": 7})
    status, body, headers = await _raw(paper, "GET", "/fapi/v1/time")
    assert (status, body["code"], headers["Retry-After"]) == (429, -1003, "7")
    status, _, _ = await _raw(paper, "GET", "/fapi/v1/time")  # the back-off holds for the whole IP
    assert status == 429
    assert (await paper.control("GET", "/limits"))["ips"]["127.0.0.1"]["in_backoff"] is True
    await paper.control("DELETE", "/limits")
    status, _, _ = await _raw(paper, "GET", "/fapi/v1/time")
    assert status == 200


async def test_late_answer_times_out_but_the_order_executed_once(paper: Paper) -> None:
    ex = paper.client("alice", timeout_ms=300)
    await ex.load_markets()
    await paper.control(
        "POST", "/faults", {"path": "/fapi/v1/order", "method": "POST", "kind": "delay", "delay_s": 1.0}
    )
    with pytest.raises(ccxt.RequestTimeout):
        await ex.create_order(BTC, "market", "buy", 0.002, params={"clientOrderId": "slow-1"})
    found = await ex.fetch_order(None, BTC, params={"origClientOrderId": "slow-1"})
    assert found["status"] == "closed" and found["filled"] == 0.002
    assert len((await paper.state("alice"))["orders"]) == 1


@pytest.mark.parametrize("execute", [True, False])
async def test_dropped_connection_with_and_without_execution(paper: Paper, execute: bool) -> None:
    ex = paper.client("alice")
    await ex.load_markets()
    await paper.control(
        "POST", "/faults", {"path": "/fapi/v1/order", "method": "POST", "kind": "drop", "execute": execute}
    )
    with pytest.raises(ccxt.NetworkError):
        await ex.create_order(BTC, "market", "buy", 0.002, params={"clientOrderId": "cut-1"})
    if execute:
        assert (await ex.fetch_order(None, BTC, params={"origClientOrderId": "cut-1"}))["filled"] == 0.002
    else:
        with pytest.raises(ccxt.OrderNotFound):
            await ex.fetch_order(None, BTC, params={"origClientOrderId": "cut-1"})


async def test_control_api_refuses_non_loopback_clients() -> None:
    from bot.paper.control import _is_loopback

    assert _is_loopback("127.0.0.1") and _is_loopback("::1") and _is_loopback("127.3.2.1")
    assert not _is_loopback("10.0.0.5") and not _is_loopback(None) and not _is_loopback("garbage")

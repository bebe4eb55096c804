"""The order signer signs exactly as ccxt does: same URL, same body byte for byte, same headers, for USDⓈ-M and
spot, with and without a configured recvWindow, whatever the parameters' characters."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.venue.binance_compat import build_binance_spot, build_binanceusdm
from bot.venue.signer import OrderSigner
from tests.conftest import market_order

NOW = 1_764_700_000_123


def ccxt_request(client: Any, api: str, params: dict[str, str]) -> dict[str, Any]:
    """What ccxt's own path sends for POST order: its `sign`, then the headers its `fetch` adds."""
    client.nonce = lambda: NOW
    request = client.sign("order", [api, "post"], "POST", dict(params))
    return {**request, "headers": client.prepare_request_headers(dict(request["headers"]))}


def order(cid: str = "cb-0a1b2c-1-c-17-0", qty: str = "0.123") -> dict[str, str]:
    return market_order(cid, qty, reduceOnly="true")


@pytest.mark.parametrize(
    ("build", "api"), [(build_binanceusdm, "fapiPrivate"), (build_binance_spot, "private")], ids=["usdm", "spot"]
)
@pytest.mark.parametrize("recv_window", [None, 7000])
def test_a_new_order_is_signed_byte_for_byte_as_ccxt_signs_it(build: Any, api: str, recv_window: int | None) -> None:
    client = build("http://127.0.0.1:9", "key-abc", "secret-xyz")
    if recv_window is not None:
        client.options["recvWindow"] = recv_window
    signer = OrderSigner(client, api)
    expected = ccxt_request(client, api, order())
    assert signer.url == expected["url"]
    assert signer.body(order(), NOW).encode() == expected["body"].encode()
    assert signer.headers == expected["headers"]


@given(
    cid=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=36),
    qty=st.decimals(min_value=0, max_value=10**6, places=8).map(lambda d: f"{d:f}"),
)
def test_any_parameter_is_encoded_as_ccxt_encodes_it(cid: str, qty: str) -> None:
    client = build_binanceusdm("http://127.0.0.1:9", "key-abc", "secret-xyz")
    signer = OrderSigner(client, "fapiPrivate")
    assert signer.body(order(cid, qty), NOW) == ccxt_request(client, "fapiPrivate", order(cid, qty))["body"]


def test_keys_it_does_not_reproduce_stay_with_ccxt() -> None:
    rsa = build_binanceusdm("http://127.0.0.1:9", "key", "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----")
    proxied = build_binanceusdm("http://127.0.0.1:9", "key", "secret")
    proxied.httpsProxy = "http://proxy.local:3128"
    assert not OrderSigner.usable(rsa) and not OrderSigner.usable(proxied)
    assert OrderSigner.usable(build_binanceusdm("http://127.0.0.1:9", "key", "secret"))

"""The local Bybit server against Bybit's documented v5 protocol, with raw HTTP (no ccxt):
signature, the timestamp rule ``server_time - recv_window <= timestamp < server_time +
1000``, retCode errors in HTTP 200, ack-only create, orderLinkId never reusable."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.exchange.conftest import KEY, SECRET
from worker.lab.sim.bybit import BybitSim


@pytest.fixture
async def call(bybit_sim: BybitSim) -> AsyncIterator[Any]:
    base = f"http://127.0.0.1:{bybit_sim.port}"
    async with aiohttp.ClientSession() as session:
        async def signed(method: str, path: str, params: dict[str, Any], *,
                         skew_ms: int = 0, window: int = 5000,
                         secret: str = SECRET) -> tuple[int, dict[str, Any]]:
            stamp = str(int(time.time() * 1000) + skew_ms)
            payload = (json.dumps(params) if method == "POST"
                       else "&".join(f"{k}={v}" for k, v in params.items()))
            sign = hmac.new(secret.encode(), f"{stamp}{KEY}{window}{payload}".encode(),
                            hashlib.sha256).hexdigest()
            headers = {"X-BAPI-API-KEY": KEY, "X-BAPI-TIMESTAMP": stamp,
                       "X-BAPI-RECV-WINDOW": str(window), "X-BAPI-SIGN": sign,
                       "Content-Type": "application/json"}
            url = f"{base}{path}" + ("" if method == "POST" else f"?{payload}")
            async with session.request(method, url, headers=headers,
                                       data=payload if method == "POST" else None) as r:
                return r.status, await r.json()
        yield signed


def order(category: str, **kw: str) -> dict[str, str]:
    return {"category": category, "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit",
            "qty": "0.01", "price": "40000", **kw}


async def test_timestamp_rule_and_signature(call: Any) -> None:
    wallet = ("GET", "/v5/account/wallet-balance", {"accountType": "UNIFIED"})
    assert (await call(*wallet, skew_ms=500))[1]["retCode"] == 0       # < server + 1000
    assert (await call(*wallet, skew_ms=1500))[1]["retCode"] == 10002  # too far ahead
    assert (await call(*wallet, skew_ms=-600, window=1000))[1]["retCode"] == 0
    assert (await call(*wallet, skew_ms=-1500, window=1000))[1]["retCode"] == 10002
    status, body = await call(*wallet, secret="not-the-secret")
    assert status == 200 and body["retCode"] == 10004


async def test_create_acks_ids_only_and_link_ids_are_never_reusable(call: Any) -> None:
    status, body = await call("POST", "/v5/order/create", order("linear", orderLinkId="L1"))
    assert status == 200 and body["retCode"] == 0
    assert set(body["result"]) == {"orderId", "orderLinkId"}
    oid = body["result"]["orderId"]
    assert (await call("POST", "/v5/order/cancel", {"category": "linear", "symbol": "BTCUSDT",
                                                    "orderId": oid}))[1]["retCode"] == 0
    again = await call("POST", "/v5/order/create", order("linear", orderLinkId="L1"))
    assert again[1]["retCode"] == 110072  # even after the first one closed
    _, open_only = await call("GET", "/v5/order/realtime", {"category": "linear"})
    assert open_only["result"]["list"] == []
    _, by_link = await call("GET", "/v5/order/realtime",
                            {"category": "linear", "orderLinkId": "L1"})
    assert by_link["result"]["list"][0]["orderStatus"] == "Cancelled"


@pytest.mark.parametrize("category, params, code", [
    ("spot", {"price": "40000.001"}, 170134),
    ("spot", {"qty": "0.0000001"}, 170137),
    ("spot", {"qty": "0.000001", "price": "40000"}, 170136),
    ("spot", {"qty": "0.00002", "price": "40000"}, 170140),
    ("spot", {"qty": "5000"}, 170131),
    ("linear", {"price": "40000.001"}, 10001),
    ("linear", {"qty": "0.0001"}, 10001),
    ("linear", {"qty": "0.001", "price": "4000"}, 110094),
    ("linear", {"qty": "5000"}, 110007),
    ("option", {}, 10001),
])
async def test_filters_and_funds_answer_bybit_codes(call: Any, category: str,
                                                    params: dict[str, str], code: int) -> None:
    status, body = await call("POST", "/v5/order/create", order(category, **params))
    assert status == 200 and body["retCode"] == code


async def test_tickers_symbol_is_optional(call: Any) -> None:
    """Documented: without ``symbol`` /v5/market/tickers lists the whole category (ccxt's
    fetch_tickers of several symbols, which the risk check's batched prices use)."""
    _, every = await call("GET", "/v5/market/tickers", {"category": "spot"})
    assert every["retCode"] == 0 and len(every["result"]["list"]) > 1
    _, one = await call("GET", "/v5/market/tickers", {"category": "spot", "symbol": "BTCUSDT"})
    assert [t["symbol"] for t in one["result"]["list"]] == ["BTCUSDT"]

"""Metrics: ccxt-path reconciliations and retries counted, reject reasons, dead letters,
build info, and one label casing."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Self

import pytest
from prometheus_client import generate_latest

from worker.errors import AmbiguousOrderState, TransientError
from worker.exchange.ccxt_adapter import CCXTAdapter
from worker.exchange.factory import ExchangeFactory
from worker.exchange.models import OrderRequest, OrderState
from worker.exchange.placement import place_once
from worker.exchange.retry import call_with_retry
from worker.metrics import Metrics
from worker.settings import load_settings


class OfflineAdapter(CCXTAdapter):
    async def __aenter__(self) -> Self:  # no load_markets: no network in unit tests
        return self


class AmbiguousOnce:
    """create times out once; the order turns out to exist."""

    def __init__(self, order: OrderState) -> None:
        self.order, self.created = order, False

    async def find_order(self, symbol: str, client_order_id: str) -> OrderState | None:
        return self.order if self.created else None

    async def create_order(self, request: OrderRequest) -> OrderState:
        self.created = True
        raise AmbiguousOrderState("timeout")


def _value(m: Metrics, line_start: str) -> float:
    for line in generate_latest(m.registry).decode().splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_ccxt_path_reconciliations_and_retries_reach_the_metrics(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OW_CRED_DESK1_MYEX_API_KEY", "key-123456")
    monkeypatch.setenv("OW_CRED_DESK1_MYEX_SECRET", "secret-123456")
    metrics = Metrics()
    settings = load_settings({"OW_EXCHANGES": '{"myex": {"driver": "custom", "live": true}}',
                              "OW_RECONCILE_DELAY_S": "0", "OW_RETRY_INITIAL_S": "0.001",
                              "OW_RETRY_MAX_BACKOFF_S": "0.001"})
    factory = ExchangeFactory(settings, metrics=metrics)
    factory.register("custom", OfflineAdapter)
    client = await factory.get("desk1", "myex")
    assert isinstance(client, OfflineAdapter)
    order = OrderState(id="1", client_order_id="ow-1", status="open", symbol="BTC/USDT",
                       side="buy", type="market", amount=Decimal(1), filled=Decimal(0),
                       remaining=Decimal(1))
    req = OrderRequest(client_order_id="ow-1", symbol="BTC/USDT", side="buy", type="market",
                       amount=Decimal(1))
    assert await place_once(AmbiguousOnce(order), req, client.placement) is order
    assert _value(metrics, 'ow_reconciliations_total{kind="ambiguous_create"}') == 1
    calls = 0

    async def flaky() -> int:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise TransientError("503")
        return calls

    assert await call_with_retry(client.retry, "fetch_order", flaky) == 3
    assert _value(metrics, 'ow_exchange_retries_total{operation="fetch_order"}') == 2
    await factory.aclose()


def test_reject_reasons_dead_letters_build_info_and_one_label_casing() -> None:
    m = Metrics()
    m.commands.labels("PlaceOrder").inc()
    m.on_event("order_rejected", "risk_max_notional")
    m.on_event("order_failed", "retries_exhausted")
    m.on_event("order_filled")
    m.on_dead_letter("malformed: Object contains unknown field `x`")
    m.on_dead_letter("retries exhausted after 5 attempts")
    text = generate_latest(m.registry).decode()
    assert 'ow_rejections_total{kind="order_rejected",reason="risk_max_notional"} 1.0' in text
    assert 'ow_dead_letters_total{reason="malformed"} 1.0' in text
    assert 'ow_commands_total{kind="place_order"} 1.0' in text
    assert "ow_build_info{" in text and "process_cpu_seconds_total" in text
    for name, labels in re.findall(r"^(ow_\w+)\{([^}]*)\}", text, re.M):
        if name == "ow_build_info":
            continue
        for key, value in re.findall(r'(\w+)="([^"]*)"', labels):
            if key != "le":  # histogram bucket bounds
                assert re.fullmatch(r"[a-z0-9_]+", value), (name, value)

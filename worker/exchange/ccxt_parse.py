"""Parsing of ccxt's unified structures into our typed results (no ccxt import)."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from worker.exchange.models import OrderRequest, OrderState, OrderStatus

_STATUSES: dict[str, OrderStatus] = {  # anything else (e.g. 'canceling') is not terminal yet
    s: s for s in ("open", "closed", "canceled", "rejected", "expired")}


def to_decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_order(raw: dict[str, Any], req: OrderRequest | None = None) -> OrderState:
    """A ccxt unified order dict -> OrderState (Decimal everywhere)."""
    amount = to_decimal(raw.get("amount")) or (req.amount if req else Decimal(0))
    filled = to_decimal(raw.get("filled")) or Decimal(0)
    status: OrderStatus = _STATUSES.get(raw.get("status") or "open", "open")
    fee, fee_ccy = Decimal(0), None
    for f in raw.get("fees") or ([raw["fee"]] if raw.get("fee") else []):
        if f and f.get("cost") is not None:
            fee += Decimal(str(f["cost"]))
            fee_ccy = f.get("currency") or fee_ccy
    return OrderState(
        id=str(raw["id"]), client_order_id=raw.get("clientOrderId"),
        symbol=raw.get("symbol") or (req.symbol if req else ""),
        side=raw.get("side") or (req.side if req else ""),
        type=raw.get("type") or (req.type if req else ""), status=status,
        amount=amount, filled=filled,
        remaining=to_decimal(raw.get("remaining")) or amount - filled,
        price=to_decimal(raw.get("price")),
        average=to_decimal(raw.get("average")) if filled else None,
        fee=fee, fee_currency=fee_ccy, timestamp_ms=raw.get("timestamp"))

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


LOOKUP_BY_CLIENT_ID = ("fetchOrders", "fetchCanceledAndClosedOrders")
"""ccxt capabilities that list closed and canceled orders (with their client ids)."""


def can_find_closed_orders(has: dict[str, Any]) -> bool:
    """Whether a ccxt exchange (its ``has`` map) can find an order by client id once it
    left the open list: all orders, or both closed and canceled ones."""
    return any(has.get(c) for c in LOOKUP_BY_CLIENT_ID) or bool(
        has.get("fetchClosedOrders") and has.get("fetchCanceledOrders"))


def sum_fees(fees: list[dict[str, Any] | None]) -> dict[str, Decimal]:
    """ccxt fee structures summed per currency (a fee without currency counts as '?')."""
    out: dict[str, Decimal] = {}
    for f in fees:
        if f and f.get("cost") is not None:
            ccy = f.get("currency") or "?"
            out[ccy] = out.get(ccy, Decimal(0)) + Decimal(str(f["cost"]))
    return out


def single_fee(fees: dict[str, Decimal]) -> tuple[Decimal, str | None]:
    """(fee, currency) when one currency was charged, else (0, None): never a sum of
    amounts in different currencies."""
    charged = {c: v for c, v in fees.items() if v}
    if len(charged) == 1:
        ((ccy, fee),) = charged.items()
        return fee, ccy
    if not charged and len(fees) == 1:
        return Decimal(0), next(iter(fees))
    return Decimal(0), None


def parse_order(raw: dict[str, Any], req: OrderRequest | None = None) -> OrderState:
    """A ccxt unified order dict -> OrderState (Decimal everywhere)."""
    amount = to_decimal(raw.get("amount")) or (req.amount if req else Decimal(0))
    filled = to_decimal(raw.get("filled")) or Decimal(0)
    status: OrderStatus = _STATUSES.get(raw.get("status") or "open", "open")
    fees = sum_fees(raw.get("fees") or ([raw["fee"]] if raw.get("fee") else []))
    fee, fee_ccy = single_fee(fees)
    return OrderState(
        id=str(raw["id"]), client_order_id=raw.get("clientOrderId"),
        symbol=raw.get("symbol") or (req.symbol if req else ""),
        side=raw.get("side") or (req.side if req else ""),
        type=raw.get("type") or (req.type if req else ""), status=status,
        amount=amount, filled=filled,
        remaining=to_decimal(raw.get("remaining")) or amount - filled,
        price=to_decimal(raw.get("price")),
        average=to_decimal(raw.get("average")) if filled else None,
        fee=fee, fee_currency=fee_ccy, fees=fees, timestamp_ms=raw.get("timestamp"))

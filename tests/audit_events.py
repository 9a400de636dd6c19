"""Sample events and the first released audit schema, shared by the audit store tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from schemas import Event, OrderAccepted, OrderFilled, OrderRejected
from schemas.events import RejectReason

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def order_events(cid: str, account: str = "desk1", minutes: int = 0) -> list[Event]:
    """Accepted then filled (side buy, fee in USDT)."""
    common: dict[str, Any] = {
        "command_id": f"cmd-{cid}", "account": account, "exchange": "paper",
        "symbol": "BTC/USDT", "client_order_id": cid, "side": "buy",
        "amount": Decimal("0.5")}
    at = T0 + timedelta(minutes=minutes)
    return [OrderAccepted(event_id=f"{cid}-a", sequence=0, occurred_at=at, **common),
            OrderFilled(event_id=f"{cid}-f", sequence=1_000_001, filled=Decimal("0.5"),
                        average_price=Decimal("60000.5"), fee=Decimal("0.3"),
                        fee_currency="USDT", occurred_at=at + timedelta(seconds=1), **common)]


def rejected(cid: str, account: str = "desk1") -> Event:
    return OrderRejected(event_id=f"{cid}-r", command_id=f"cmd-{cid}", account=account,
                         exchange="paper", symbol="BTC/USDT", client_order_id=cid,
                         sequence=1_000_002, occurred_at=T0, side="sell",
                         reason=RejectReason.RISK_MAX_NOTIONAL, message="too big")


# The table as first released (schema version 1, before ow_schema_version existed).
SQLITE_V1 = """
CREATE TABLE ow_events (
    event_id TEXT PRIMARY KEY, command_id TEXT NOT NULL, client_order_id TEXT NOT NULL,
    account TEXT NOT NULL, exchange TEXT NOT NULL, symbol TEXT NOT NULL, kind TEXT NOT NULL,
    sequence INTEGER NOT NULL, filled TEXT NOT NULL, amount TEXT NOT NULL,
    average_price TEXT, fee TEXT NOT NULL, occurred_at TEXT NOT NULL, body TEXT NOT NULL,
    received_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')));
CREATE INDEX ow_events_cid ON ow_events (client_order_id);
CREATE INDEX ow_events_cmd ON ow_events (command_id);
CREATE TRIGGER ow_events_no_update BEFORE UPDATE ON ow_events
    BEGIN SELECT RAISE(ABORT, 'ow_events is append-only'); END;
CREATE TRIGGER ow_events_no_delete BEFORE DELETE ON ow_events
    BEGIN SELECT RAISE(ABORT, 'ow_events is append-only'); END;
"""
V1_COLUMNS = ("event_id", "command_id", "client_order_id", "account", "exchange", "symbol",
              "kind", "sequence", "filled", "amount", "average_price", "fee", "occurred_at",
              "body")

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import msgspec
import pytest

from schemas import OrderFilled, client_order_id, event_id
from schemas.commands import decode_command, encode_command
from schemas.events import decode_event, encode_event
from tests.conftest import cancel, place


def test_commands_round_trip() -> None:
    for cmd in (place(type="limit", price="123.45"), cancel("c-1")):
        assert decode_command(encode_command(cmd)) == cmd


def test_event_round_trip_keeps_decimals_exact() -> None:
    ev = OrderFilled(event_id="e", command_id="c", account="a", exchange="paper",
                     symbol="BTC/USDT", client_order_id="ow-x", sequence=1_000_001,
                     occurred_at=datetime.now(UTC), amount=Decimal("0.1"),
                     filled=Decimal("0.1"), average_price=Decimal("60000.12345678"))
    raw = encode_event(ev)
    assert b'"0.1"' in raw and b'"60000.12345678"' in raw
    assert decode_event(raw) == ev


@pytest.mark.parametrize("patch, where", [
    ({"amount": 0.1}, "$.amount"),            # JSON number, not a decimal string
    ({"amount": "-1"}, "$.amount"),
    ({"amount": "1e5"}, "$.amount"),
    ({"amount": "NaN"}, "$.amount"),
    ({"side": "hold"}, "$.side"),
    ({"symbol": "btcusdt"}, "$.symbol"),
    ({"created_at": "2026-01-01T00:00:00"}, "$.created_at"),  # naive timestamp
    ({"reduce_only": True}, "reduce_only"),   # unknown fields are refused
    ({"timeout_s": 0}, "$.timeout_s"),
])
def test_bad_commands_are_refused_with_a_location(patch: dict[str, object], where: str) -> None:
    raw = msgspec.json.decode(encode_command(place()))
    raw.update(patch)
    with pytest.raises(msgspec.ValidationError, match=where.replace("$", r"\$")):
        decode_command(msgspec.json.encode(raw))


def test_oversize_and_garbage() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_command(b"{" + b" " * 20_000 + b"}")
    with pytest.raises(msgspec.DecodeError):
        decode_command(b"\xff\xfe")


def test_ids_are_deterministic_and_exchange_safe() -> None:
    cid = client_order_id("acct1", "cmd-1")
    assert cid == client_order_id("acct1", "cmd-1")
    assert cid != client_order_id("acct2", "cmd-1")
    assert len(cid) <= 36 and cid.replace("-", "").isalnum()
    assert event_id(cid, "partial", Decimal("0.10")) == event_id(cid, "partial", Decimal("0.1"))
    assert event_id(cid, "partial", Decimal("0.1")) != event_id(cid, "partial", Decimal("0.2"))

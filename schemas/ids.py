"""Deterministic identifiers: the same input always yields the same id.

* ``canonical_account`` folds the aliases of an account into one identity.
* ``client_order_id`` is sent with every create so a redelivered command can be
  found on the exchange (Binance: <=36 chars of ``[.A-Z:/a-z0-9_-]``, Bybit
  ``orderLinkId``: <=36 chars of letters, digits, ``-`` and ``_``).
* ``event_id`` names an order *state*, so re-observing the same state after a
  redelivery produces the same id and consumers can dedupe.
"""

from __future__ import annotations

import hashlib
import uuid
from decimal import Decimal

CLIENT_ID_PREFIX = "ow-"
_EVENT_NS = uuid.UUID("6f1d7c52-3b1e-4c39-9a8e-2d1b5e0c7a41")


def canonical_account(account: str) -> str:
    """The one identity of an account: lower case, ``-`` as ``_``. ``desk-1``, ``desk_1``
    and ``Desk-1`` share one API key (credential lookup folds case and ``-``/``_``), so
    they are one account: one shard, one turn, one client order id per command."""
    return account.lower().replace("-", "_")


def client_order_id(account: str, command_id: str) -> str:
    digest = hashlib.sha256(
        f"{canonical_account(account)}\x00{command_id}".encode()).hexdigest()
    return CLIENT_ID_PREFIX + digest[:29]


def event_id(client_id: str, kind: str, detail: Decimal | str | None = None) -> str:
    """``detail`` tells states of one kind apart: cumulative filled, reason or status."""
    if isinstance(detail, Decimal):
        part = format(detail.normalize(), "f")
    else:
        part = detail or ""
    return str(uuid.uuid5(_EVENT_NS, f"{client_id}|{kind}|{part}"))

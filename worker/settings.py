"""One frozen, typed settings object, read from the environment (prefix ``OW_``).

Durations carry their unit in the name. Exchange definitions come from
``OW_EXCHANGES`` (JSON) or ``OW_EXCHANGES_FILE``; credentials never live here
(see ``worker.exchange.credentials``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec


class RiskLimits(msgspec.Struct, frozen=True, kw_only=True):
    max_notional: Decimal = Decimal("250000")
    """Largest order value in quote currency."""
    max_position: Decimal = Decimal("1000000")
    """Largest resulting base-asset position (spot holding or derivatives size)."""
    price_band_bps: int = 500
    """Limit prices further than this from the ticker are refused (fat finger)."""
    check_balance: bool = True
    fee_buffer_bps: int = 20


class ExchangeConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How to reach one named exchange. ``driver`` picks the factory entry."""

    driver: str = "paper"
    ccxt_id: str | None = None
    market_type: Literal["spot", "future", "swap"] = "spot"
    sandbox: bool = False
    urls: dict[str, Any] = {}
    options: dict[str, Any] = {}
    timeout_ms: int = 10_000
    rate_limit: bool = True
    paper_balances: dict[str, Decimal] = {}
    paper_prices: dict[str, Decimal] = {}
    paper_fill_ratio: Decimal = Decimal("1")
    """Share of an order's amount the paper book can fill per tick (<1: partials)."""



class Settings(msgspec.Struct, frozen=True, kw_only=True):
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    prefix: str = "orderworker"
    shards: int = 4
    prefetch: int = 32
    delivery_limit: int = 5
    worker_index: int = 0
    worker_count: int = 1
    standby_delay_s: float = 2.0
    poll_interval_s: float = 0.25
    poll_max_interval_s: float = 2.0
    cancel_confirm_s: float = 30.0
    max_command_age_s: float = 300.0
    max_clock_skew_s: float = 5.0
    retry_attempts: int = 5
    retry_max_total_s: float = 20.0
    retry_initial_s: float = 0.2
    retry_max_backoff_s: float = 5.0
    reconcile_lookups: int = 4
    reconcile_delay_s: float = 0.5
    shutdown_grace_s: float = 30.0
    quorum_group_size: Annotated[int, msgspec.Meta(ge=1)] | None = None
    """Replicas per quorum queue (``x-quorum-initial-group-size``); None: the broker's
    default (3, capped at the cluster size). On a 3-node cluster: 3 (or leave unset)."""
    metrics_port: int = 0
    reconcile_targets: str = ""
    """``account:exchange,...`` whose open ``ow-`` orders are adopted at start-up."""
    reconcile_grace_s: float = 5.0
    orphan_timeout_s: float = 60.0
    crash_points: str = ""
    log_level: str = "INFO"
    log_json: bool = True
    secrets_dir: str | None = None
    risk: RiskLimits = RiskLimits()
    exchanges: dict[str, ExchangeConfig] = msgspec.field(
        default_factory=lambda: {"paper": ExchangeConfig()}
    )

    def exchange(self, name: str) -> ExchangeConfig | None:
        return self.exchanges.get(name)


def _risk_from_env(env: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for field in RiskLimits.__struct_fields__:
        key = f"OW_RISK_{field.upper()}"
        if key in env:
            out[field] = env[key]
    return out


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build Settings from ``env`` (default ``os.environ``); ``overrides`` win."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    for field in Settings.__struct_fields__:
        key = f"OW_{field.upper()}"
        if key in env and field not in ("risk", "exchanges"):
            raw[field] = env[key]
    if "AMQP_URL" in env and "amqp_url" not in raw:
        raw["amqp_url"] = env["AMQP_URL"]
    raw["risk"] = _risk_from_env(env)
    exchanges: dict[str, Any] = {"paper": {}}
    if env.get("OW_EXCHANGES_FILE"):
        exchanges.update(json.loads(Path(env["OW_EXCHANGES_FILE"]).read_text()))
    if env.get("OW_EXCHANGES"):
        exchanges.update(json.loads(env["OW_EXCHANGES"]))
    raw["exchanges"] = exchanges
    raw.update(overrides)
    return msgspec.convert(raw, Settings, strict=False)

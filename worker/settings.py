"""One frozen, typed settings object, read from the environment (prefix ``OW_``).

Every field carries a docstring: ``python -m worker.settings_doc`` turns them into
docs/settings.md. Durations carry their unit in the name. Exchange definitions
come from ``OW_EXCHANGES`` (JSON) or ``OW_EXCHANGES_FILE``; credentials never
live here (see ``worker.exchange.credentials``). ``load_settings`` refuses
unknown keys, unknown ``OW_*`` variables and out-of-range values, listing every
problem in one ``ConfigError`` (see ``worker.config``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

__all__ = ["ConfigError", "ExchangeConfig", "RiskLimits", "Settings", "load_settings"]

Positive = Annotated[float, Meta(gt=0)]
Count = Annotated[int, Meta(ge=1)]
Bps = Annotated[int, Meta(ge=0, le=10_000)]


class RiskLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Pre-trade risk checks, one ``OW_RISK_<FIELD>`` variable each."""

    max_notional: Decimal = Decimal("250000")
    """Largest order value in quote currency."""
    max_position: Decimal = Decimal("1000000")
    """Largest resulting base-asset position (spot holding or derivatives size)."""
    price_band_bps: Bps = 500
    """Limit prices further than this from the ticker are refused (fat finger)."""
    check_balance: bool = True
    """Refuse orders the free balance cannot pay for (spot)."""
    fee_buffer_bps: Bps = 20
    """Extra share of the order value kept free for fees in the balance check."""
    max_price_age_s: Positive = 5.0
    """Price protection refuses an order when the cached price is older than this."""

    def __post_init__(self) -> None:
        for name in ("max_notional", "max_position"):
            if getattr(self, name) <= 0:
                raise ValueError(f"OW_RISK_{name.upper()} must be a positive decimal")


class ExchangeConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How to reach one named exchange: one entry of ``OW_EXCHANGES``."""

    driver: Annotated[str, Meta(min_length=1)] = "paper"
    """Factory entry: paper, binance, bybit, ccxt, or one added with register()."""
    ccxt_id: str | None = None
    """ccxt exchange id for the ``ccxt`` driver (e.g. kraken); defaults to the name."""
    market_type: Literal["spot", "future", "swap"] = "spot"
    """Which market the orders go to (ccxt defaultType)."""
    sandbox: bool = False
    """Use the exchange's testnet (ccxt set_sandbox_mode)."""
    live: bool = False
    """Confirms real-money trading: a non-paper exchange without sandbox must set it."""
    urls: dict[str, Any] = {}
    """Overrides merged into ccxt's urls (e.g. a gateway or a simulator); binance and bybit
    also take ``rest`` and ``ws`` base URLs (every REST, resp. WebSocket, host)."""
    options: dict[str, Any] = {}
    """Overrides merged into ccxt's options (e.g. recvWindow)."""
    timeout_ms: Annotated[int, Meta(ge=1)] = 10_000
    """HTTP timeout of one exchange request."""
    rate_limit: bool = True
    """Client-side rate limiting: the worker's budget of the exchange's documented limits
    (binance, bybit; fed by its usage headers, ccxt's own limiter off), else ccxt's.
    false: none (a 429's Retry-After is still honoured)."""
    clock_skew_ms: Annotated[int, Meta(ge=0, le=60_000)] = 1000
    """Worst clock difference the exchange accepts: how far its clock may run behind this
    host's. Added to the settle window (a request executes until its timestamp plus
    recvWindow on the exchange's clock). Binance and Bybit refuse timestamps 1 s or more
    ahead of their clock, so with NTP keeping this host within that, 1000 covers every
    request they execute."""
    lookup_lag_ms: Annotated[int, Meta(ge=0, le=60_000)] = 1000
    """How long a just-executed order may stay invisible to a lookup by client order id
    (Bybit documents delayed order history; Binance may answer -2013 for a moment).
    Added to the settle window: "absent" is trusted only from a lookup made after the
    last moment an earlier create could execute *and* become visible."""
    rate_share: Annotated[float, Meta(gt=0, le=1)] = 1.0
    """This worker's share of the IP's request-weight limit: 1/N when N workers share
    one IP (each also sees the others' use in the exchange's usage headers)."""
    ticker_refresh_s: Positive = 1.0
    """Risk prices: one batched ticker call per exchange refreshes them once older."""
    balance_refresh_s: Positive = 30.0
    """Risk balances: the local ledger is reconciled with the exchange once older."""
    paper_balances: dict[str, Decimal] = {}
    """Paper driver: starting balances per currency."""
    paper_prices: dict[str, Decimal] = {}
    """Paper driver: starting prices per symbol."""
    paper_fill_ratio: Decimal = Decimal("1")
    """Share of an order's amount the paper book can fill per tick (<1: partials)."""
    stream: bool = False
    """Also follow orders over the exchange's private WebSocket stream (ccxt.pro
    ``watch_orders``; binance spot and USDⓈ-M, bybit): fills arrive in milliseconds and
    REST reconciles every ``OW_STREAM_RECONCILE_S`` instead of every ``OW_TRACK_POLL_S``.
    REST stays the authority (see README). false: REST polling only."""
    stream_silence_s: Annotated[float, Meta(ge=0.3, le=300.0)] = 15.0
    """A stream connection with no frame (message or pong) for this long is stalled: it
    is dropped and reconnected, and the account's orders are reconciled by REST."""
    at_most_once: bool = False
    """Allow a ccxt exchange that cannot look an order up by client id (closed orders
    included): each client id is sent at most once per process, an ambiguous create
    stays unknown (never re-created). Without it such an exchange is refused."""

    def __post_init__(self) -> None:
        if not Decimal(0) < self.paper_fill_ratio <= 1:
            raise ValueError("paper_fill_ratio must be above 0 and at most 1")
        if self.sandbox and self.live:
            raise ValueError('"sandbox" and "live" exclude each other: choose one')


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Worker settings, one ``OW_<FIELD>`` variable each."""

    amqp_url: Annotated[str, Meta(pattern=r"^amqps?://")] = "amqp://guest:guest@127.0.0.1:5672/"
    """Broker URL (``AMQP_URL`` is read too; ``OW_AMQP_URL`` wins)."""
    prefix: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")] = "orderworker"
    """Topology name prefix: exchanges and queues are ``<prefix>.*``."""
    shards: Count = 4
    """Number of command queues; accounts map to ``crc32(account) % shards``."""
    prefetch: Count = 32
    """Unacked commands one worker holds at a time."""
    delivery_limit: Count = 20
    """Deliveries of one command before the broker dead-letters it (a command that keeps
    crashing workers); the dead-letter watcher then still gives it an outcome."""
    worker_index: Annotated[int, Meta(ge=0)] = 0
    """This worker's ordinal: it prefers shards ``k % worker_count == worker_index``, and
    of several broker addresses it tries ``worker_index % count`` first."""
    worker_count: Count = 1
    """Number of workers sharing the preferred shards."""
    standby_delay_s: Annotated[float, Meta(ge=0)] = 2.0
    """Wait before subscribing as standby to the non-preferred shards."""
    track_poll_s: Positive = 1.0
    """Status poll interval per (account, exchange): one open-orders call per symbol."""
    track_cycle_s: Annotated[float, Meta(ge=0.1, le=300.0)] = 10.0
    """Tracking records come round once per cycle: a new shard owner knows every
    tracked order within one cycle (two, to be sure, before a cancel says "not found")."""
    stream_reconcile_s: Annotated[float, Meta(gt=0, le=3600.0)] = 30.0
    """With an exchange's order stream healthy, open orders are listed by REST this often
    (instead of every ``track_poll_s``); at once after the stream (re)connects, breaks or
    misses something. Cancels and pending lookups still run every ``track_poll_s``."""
    intake_budget_s: Annotated[float, Meta(gt=0, le=50.0)] = 40.0
    """How long a command may retry transient errors before it gets an outcome
    (OrderFailed, or a pending order handed to the tracker); keeps it acked in time."""
    fence_s: Annotated[float, Meta(gt=0, le=60.0)] = 5.0
    """Fence: a create is sent only within this long of a broker round trip proving the
    worker still holds the command, so a previous holder can act at most this long after
    a redelivery arrived; a redelivered command waits it out on top of the settle window."""
    cancel_confirm_s: Positive = 30.0
    """A cancel the exchange has not confirmed after this long is sent again."""
    max_command_age_s: Positive = 300.0
    """Commands older than this are refused as stale (existing orders still reconciled)."""
    lookup_before_create: Literal["when_needed", "always"] = "always"
    """Look an order up by client id before creating it: always (the default: safe with
    any publisher, one extra request per order), or only when an earlier attempt of the
    command is possible (redelivered, marked re-send, seen before; see
    worker.orders.lookup). ``when_needed`` saves that request but relies on every
    publisher marking a command it sends again (OrderClient does; a strategy that
    restarts and re-sends with a fresh client does not): unmarked duplicates reaching
    two worker processes can be placed twice."""
    max_clock_skew_s: Annotated[float, Meta(ge=0)] = 5.0
    """Tolerated clock difference for command timestamps from the future."""
    retry_attempts: Count = 5
    """Attempts of one exchange call on transient errors."""
    retry_max_total_s: Positive = 20.0
    """Time budget of one exchange call's retries."""
    retry_initial_s: Positive = 0.2
    """First retry backoff (exponential, full jitter)."""
    retry_max_backoff_s: Positive = 5.0
    """Longest retry backoff."""
    reconcile_lookups: Count = 4
    """Lookups by client order id after an ambiguous create."""
    reconcile_delay_s: Annotated[float, Meta(ge=0)] = 0.5
    """Pause between those lookups."""
    shutdown_grace_s: Annotated[float, Meta(ge=0)] = 30.0
    """On SIGTERM, time for in-flight commands to finish before they are requeued."""
    quorum_group_size: Annotated[int, Meta(ge=1)] | None = None
    """Replicas per quorum queue (``x-quorum-initial-group-size``); unset: the broker's
    default (3, capped at the cluster size). Every worker, client and tool must agree."""
    metrics_port: Annotated[int, Meta(ge=0, le=65_535)] = 0
    """Port of /metrics, /healthz and /readyz (0: off); the audit consumer uses it too."""
    crash_points: str = ""
    """Fault injection only: ``step:probability,...`` (see worker.crashpoints)."""
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    """Event loop of ``orderworker run``: uvloop (installed with ccxt; about a quarter
    less CPU per order on the ccxt path) or the standard library's. uvloop falls back
    to asyncio where it is not installed."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    """Root log level."""
    log_json: bool = True
    """JSON log lines (false: plain text)."""
    secrets_dir: str | None = None
    """Directory of credential files ``<account>/<exchange>/{api_key,secret,password}``."""
    audit_db: Annotated[str, Meta(min_length=1)] = "orderworker-audit.sqlite3"
    """Audit store: a SQLite path or a ``postgresql://`` URL."""
    risk: RiskLimits = RiskLimits()
    """Pre-trade risk limits (``OW_RISK_*``)."""
    exchanges: dict[str, ExchangeConfig] = msgspec.field(
        default_factory=lambda: {"paper": ExchangeConfig()})
    """Exchanges by name (``OW_EXCHANGES`` JSON or ``OW_EXCHANGES_FILE``); paper is always there."""

    def __post_init__(self) -> None:
        if self.retry_initial_s > self.retry_max_backoff_s:
            raise ValueError("OW_RETRY_INITIAL_S must not exceed OW_RETRY_MAX_BACKOFF_S")

    def exchange(self, name: str) -> ExchangeConfig | None:
        return self.exchanges.get(name)


class ConfigError(ValueError):
    """The configuration has problems; ``problems`` names each one and what to fix."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build Settings from ``env`` (default ``os.environ``); ``overrides`` win.
    Raises ConfigError listing every problem found."""
    from worker.config import build_settings

    return build_settings(os.environ if env is None else env, overrides)

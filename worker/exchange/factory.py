"""ExchangeFactory: driver registry plus a cache of live clients per (account, exchange).

Built-in drivers: ``paper`` (in-process), ``binance``, ``bybit`` and ``ccxt``
(any other ccxt id via ``ccxt_id``). The ccxt drivers are imported on first
use, so importing the worker never loads ccxt. ``register`` adds more.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from typing import Any

import msgspec

from worker.errors import AuthError, UnknownExchange
from worker.exchange.budget import UNLIMITED
from worker.exchange.credentials import Credentials, load_credentials
from worker.exchange.paper import PaperExchange
from worker.exchange.ports import Exchange
from worker.exchange.standalone import ExchangeType, create_exchange
from worker.exchange.venue import Venue
from worker.gctune import freeze_new
from worker.logs import REDACTOR
from worker.messages import suggest
from worker.metrics import Metrics
from worker.policy import placement_policy, retry_policy
from worker.settings import ExchangeConfig, Settings

__all__ = ["ExchangeFactory", "ExchangeType", "create_exchange"]

Builder = Callable[[str, ExchangeConfig, Credentials | None, Settings], Exchange]


def _adapter(klass: type, name: str, cfg: ExchangeConfig, creds: Credentials | None,
             settings: Settings, metrics: Metrics | None = None,
             venues: dict[str, Venue] | None = None) -> Exchange:
    """Build a ccxt adapter class (CCXTAdapter's constructor) with our policies; the
    accounts of one exchange share a ``Venue`` (request budget, markets, tickers)."""
    if creds is None and not cfg.options.get("allow_public_only"):
        raise AuthError(f"no credentials configured for exchange {name!r}")
    venue = None
    if venues is not None and hasattr(klass, "rate_spec"):
        venue = venues.get(name)
        if venue is None:
            spec = klass.rate_spec(cfg.market_type) if cfg.rate_limit else UNLIMITED
            venue = venues[name] = Venue(spec,
                                         share=cfg.rate_share,
                                         ticker_refresh_s=cfg.ticker_refresh_s)
    exchange: Exchange = klass(name, cfg, creds, retry=retry_policy(settings, metrics),
                               placement=placement_policy(settings, metrics),
                               **({"venue": venue} if venue is not None else {}))
    return exchange


_BUILT_IN = {"ccxt": ("worker.exchange.ccxt_adapter", "CCXTAdapter"),
             "binance": ("worker.exchange.binance", "BinanceExchange"),
             "bybit": ("worker.exchange.bybit", "BybitExchange")}


class ExchangeFactory:
    """Implements the ExchangeProvider port. Retries and reconciliations of the
    exchanges it builds are counted in ``metrics`` when given.
    ``ExchangeFactory.create_exchange(...)`` is the standalone entry point of the seed
    document (see ``standalone``)."""

    create_exchange = staticmethod(create_exchange)

    def __init__(self, settings: Settings, *, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self._drivers: dict[str, Builder] = {"paper": self._paper}
        for driver, (module, cls) in _BUILT_IN.items():
            self._drivers[driver] = self._lazy(module, cls)
        self._live: dict[tuple[str, str], Exchange] = {}
        self.venues: dict[str, Venue] = {}
        """What the accounts of one exchange share (budget, markets, tickers)."""
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def _paper(self, name: str, cfg: ExchangeConfig, creds: Credentials | None,
               settings: Settings) -> Exchange:
        return PaperExchange(name, cfg, placement=placement_policy(settings, self.metrics))

    def _lazy(self, module: str, cls: str) -> Builder:
        """A builder importing its class on first use (keeps ccxt out of start-up)."""
        def build(name: str, cfg: ExchangeConfig, creds: Credentials | None,
                  settings: Settings) -> Exchange:
            return _adapter(getattr(importlib.import_module(module), cls), name, cfg, creds,
                            settings, self.metrics, self.venues)
        return build

    def register(self, driver: str, target: type | Builder) -> None:
        """``register("binance", BinanceExchange)`` (a ccxt adapter class) or a builder
        ``(name, config, credentials, settings) -> Exchange`` for anything else."""
        if isinstance(target, type):
            klass = target
            self._drivers[driver] = lambda n, c, cr, s: _adapter(klass, n, c, cr, s, self.metrics,
                                                                 self.venues)
        else:
            self._drivers[driver] = target

    def drivers(self) -> list[str]:
        """Registered driver names (start-up checks every configured exchange's driver)."""
        return sorted(self._drivers)

    async def check_exchanges(self) -> None:
        """Raise UnknownExchange (naming it) for a configured exchange whose driver is
        missing or whose ccxt exchange cannot find orders by client id (see
        ``CCXTAdapter.check_capabilities``). No network; meant for start-up."""
        for name, cfg in self.settings.exchanges.items():
            builder = self._drivers.get(cfg.driver)
            if builder is None:
                raise UnknownExchange(f"no driver {cfg.driver!r} for exchange {name!r}")
            if cfg.driver == "paper":
                continue
            probe: Any = builder(name, msgspec.structs.replace(
                cfg, options={**cfg.options, "allow_public_only": True}), None, self.settings)
            check = getattr(probe, "check_capabilities", None)
            if check is None:
                continue
            probe.client = probe.build_client()
            try:
                check()
            finally:
                await probe.client.close()

    def is_spot(self, exchange: str) -> bool:
        cfg = self.settings.exchange(exchange)
        return cfg is None or cfg.market_type == "spot"

    async def get(self, account: str, exchange: str) -> Exchange:
        key = (account, exchange)
        live = self._live.get(key)
        if live is not None:
            return live
        async with self._locks.setdefault(key, asyncio.Lock()):
            if key in self._live:
                return self._live[key]
            cfg = self.settings.exchange(exchange)
            if cfg is None:
                known = sorted(self.settings.exchanges)
                raise UnknownExchange(
                    f"exchange {exchange!r} is not configured{suggest(exchange, known)}; "
                    f"the workers have: {', '.join(known) or 'none'} (OW_EXCHANGES)")
            builder = self._drivers.get(cfg.driver)
            if builder is None:
                raise UnknownExchange(f"no driver {cfg.driver!r} for exchange {exchange!r}")
            creds = load_credentials(account, exchange, secrets_dir=self.settings.secrets_dir)
            if creds is not None:
                REDACTOR.add(*creds.secrets())
            client = builder(exchange, cfg, creds, self.settings)
            await client.__aenter__()
            freeze_new()  # its markets and ccxt state live as long as the worker
            self._live[key] = client
            return client

    async def aclose(self) -> None:
        live, self._live = list(self._live.values()), {}
        for client in live:
            await client.__aexit__(None, None, None)

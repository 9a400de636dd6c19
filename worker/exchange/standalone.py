"""The seed document's exchange-module entry point, usable without a broker or Settings:

    exchange = ExchangeFactory.create_exchange(exchange_type=ExchangeType.BINANCE,
                                               api_key=..., api_secret=..., testnet=True)
    async with exchange:
        price = await exchange.get_ticker_price("BTC/USDT")
        balances = await exchange.get_balances()        # {asset: Balance}
        order = await exchange.execute_trade(symbol="BTC/USDT", side="buy", amount=amount)

Optional keywords mirror ``ExchangeConfig`` (``market_type``, ``urls``, ``options``,
``timeout_ms``, ``ccxt_id``, ``at_most_once``). ``testnet`` selects ccxt's sandbox
URLs; ``urls={"rest": "http://host:port"}`` points the REST API elsewhere (the local
servers in ``worker.lab.sim``). Retry and placement policies default to the worker's.
"""

from __future__ import annotations

import importlib
from enum import StrEnum
from typing import Any, cast

import msgspec

from worker.errors import UnknownExchange
from worker.exchange.credentials import Credentials
from worker.exchange.paper import PaperExchange
from worker.exchange.placement import PlacementPolicy
from worker.exchange.ports import StandaloneExchange
from worker.exchange.retry import RetryPolicy
from worker.logs import REDACTOR
from worker.settings import ExchangeConfig


class ExchangeType(StrEnum):
    BINANCE = "binance"
    BYBIT = "bybit"
    PAPER = "paper"
    CCXT = "ccxt"
    """Any other ccxt exchange: pass ``ccxt_id``."""


_CLASSES = {
    ExchangeType.BINANCE: ("worker.exchange.binance", "BinanceExchange"),
    ExchangeType.BYBIT: ("worker.exchange.bybit", "BybitExchange"),
    ExchangeType.CCXT: ("worker.exchange.ccxt_adapter", "CCXTAdapter"),
}


def create_exchange(exchange_type: ExchangeType | str, api_key: str | None = None,
                    api_secret: str | None = None, testnet: bool = False, *,
                    password: str | None = None, name: str | None = None,
                    retry: RetryPolicy | None = None, placement: PlacementPolicy | None = None,
                    **config: Any) -> StandaloneExchange:
    """An exchange adapter for one account; enter it with ``async with``."""
    try:
        kind = ExchangeType(str(exchange_type).lower())
    except ValueError:
        raise UnknownExchange(f"unknown exchange type {exchange_type!r}; one of "
                              f"{', '.join(t.value for t in ExchangeType)}") from None
    try:
        cfg = msgspec.convert({"driver": kind.value, "sandbox": testnet, **config},
                              ExchangeConfig, strict=False)
    except msgspec.ValidationError as exc:
        raise UnknownExchange(f"bad exchange configuration: {exc}") from exc
    label = name or cfg.ccxt_id or kind.value
    if kind is ExchangeType.PAPER:
        return cast(StandaloneExchange, PaperExchange(label, cfg, placement=placement))
    creds = None
    if api_key and api_secret:
        creds = Credentials(api_key, api_secret, password)
        REDACTOR.add(*creds.secrets())
    module, cls = _CLASSES[kind]
    klass = getattr(importlib.import_module(module), cls)
    return cast(StandaloneExchange, klass(label, cfg, creds, retry=retry, placement=placement))

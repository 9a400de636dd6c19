from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from worker.exchange.binance import BinanceExchange
from worker.exchange.bybit import BybitExchange
from worker.exchange.credentials import Credentials
from worker.exchange.placement import PlacementPolicy
from worker.exchange.retry import RetryPolicy
from worker.lab.sim.binance import BinanceSim
from worker.lab.sim.bybit import BybitSim
from worker.settings import ExchangeConfig

KEY, SECRET = "test-key-123456", "test-secret-abcdef"
# client gives up after 1 s; the simulator drops requests older than 1.5 s
TIMEOUT_MS, RECV_WINDOW_MS = 1000, 1500
FAST_RETRY = RetryPolicy(attempts=4, max_total_s=3, initial_s=0.02, max_backoff_s=0.2)


def binance_config(url: str) -> ExchangeConfig:
    return ExchangeConfig(driver="binance", urls={"rest": url}, timeout_ms=TIMEOUT_MS,
                          options={"recvWindow": RECV_WINDOW_MS})


@pytest.fixture
async def sim() -> AsyncIterator[BinanceSim]:
    s = BinanceSim({KEY: SECRET})
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def binance(sim: BinanceSim) -> AsyncIterator[BinanceExchange]:
    ex = BinanceExchange("binance", binance_config(f"http://127.0.0.1:{sim.port}"),
                         Credentials(KEY, SECRET), retry=FAST_RETRY,
                         placement=PlacementPolicy(lookups=3, lookup_delay_s=0.1,
                                                   refused_backoff_s=0.05))
    async with ex:
        yield ex


BYBIT_RECV_WINDOW_MS = 1000  # settle window: 1 s + 1 s accepted clock lead + 0.5 s


def bybit_config(url: str, market_type: str = "spot") -> ExchangeConfig:
    return ExchangeConfig(driver="bybit", market_type=market_type, urls={"rest": url},  # type: ignore[arg-type]
                          timeout_ms=TIMEOUT_MS, options={"recvWindow": BYBIT_RECV_WINDOW_MS})


@pytest.fixture
async def bybit_sim() -> AsyncIterator[BybitSim]:
    s = BybitSim({KEY: SECRET})
    await s.start()
    yield s
    await s.stop()


@pytest.fixture(params=["spot", "swap"])
async def bybit(request: pytest.FixtureRequest,
                bybit_sim: BybitSim) -> AsyncIterator[BybitExchange]:
    ex = BybitExchange("bybit", bybit_config(f"http://127.0.0.1:{bybit_sim.port}",
                                             request.param),
                       Credentials(KEY, SECRET), retry=FAST_RETRY,
                       placement=PlacementPolicy(lookups=3, lookup_delay_s=0.1,
                                                 refused_backoff_s=0.05))
    async with ex:
        yield ex


@pytest.fixture
async def binance_futures(sim: BinanceSim) -> AsyncIterator[BinanceExchange]:
    cfg = ExchangeConfig(driver="binance", market_type="swap",
                         urls={"rest": f"http://127.0.0.1:{sim.port}"}, timeout_ms=TIMEOUT_MS,
                         options={"recvWindow": RECV_WINDOW_MS})
    ex = BinanceExchange("binance-usdm", cfg, Credentials(KEY, SECRET), retry=FAST_RETRY,
                         placement=PlacementPolicy(lookups=3, lookup_delay_s=0.1,
                                                   refused_backoff_s=0.05))
    async with ex:
        yield ex

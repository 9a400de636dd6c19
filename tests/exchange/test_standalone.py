"""The seed document's exchange-module API, standalone (no broker, no Settings)."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tests.exchange.conftest import KEY, SECRET
from worker import errors
from worker.exchange.factory import ExchangeFactory, ExchangeType
from worker.exchange.models import Balance
from worker.lab.sim.binance import BinanceSim
from worker.lab.sim.bybit import BybitSim

EXAMPLE = Path(__file__).parents[2] / "examples" / "exchange_standalone.py"


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
@pytest.mark.parametrize("market", ["spot", "swap"])
def test_example_runs_against_the_local_servers(exchange: str, market: str) -> None:
    out = subprocess.run([sys.executable, str(EXAMPLE), "--exchange", exchange,
                          "--market", market], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "-> closed, filled 0.01" in out.stdout and "position long" in out.stdout


@pytest.mark.parametrize("kind", [ExchangeType.BINANCE, ExchangeType.BYBIT])
async def test_seed_calls_and_never_twice(kind: ExchangeType) -> None:
    sim = BinanceSim({KEY: SECRET}) if kind is ExchangeType.BINANCE else BybitSim({KEY: SECRET})
    url = await sim.start()
    try:
        exchange = ExchangeFactory.create_exchange(
            exchange_type=kind, api_key=KEY, api_secret=SECRET, testnet=True,
            urls={"rest": url}, timeout_ms=1000, options={"recvWindow": 1000})
        async with exchange:
            usdt = (await exchange.get_balances()).get("USDT", Balance(0))
            assert usdt.available > 0 and Balance(0).available == 0
            sim.faults.set([{"kind": "accept_drop", "group": "create", "count": 1}])
            order = await exchange.execute_trade(symbol="BTC/USDT", side="buy",
                                                 amount=Decimal("0.01"))
            assert order.status == "closed" and (order.client_order_id or "").startswith("sa-")
            assert sim.orders_per_client_id()[order.client_order_id or ""] == 1
            again = await exchange.execute_trade(symbol="BTC/USDT", side="buy", amount="0.01",
                                                 client_order_id=order.client_order_id)
            assert again.id == order.id  # a retried call with the same id adopts
            assert (await exchange.get_positions())["BTC"].amount > 0
            assert (await exchange.get_trading_fees())["BTC/USDT"].taker > 0
            assert len(await exchange.get_order_history("BTC/USDT")) == 1
            with pytest.raises(errors.CommandError, match="side"):
                await exchange.execute_trade(symbol="BTC/USDT", side="hold", amount=1)
    finally:
        await sim.stop()


def test_bad_configuration_names_what_to_fix() -> None:
    with pytest.raises(errors.UnknownExchange, match=r"kraken.*binance"):
        ExchangeFactory.create_exchange(exchange_type="kraken", api_key="k", api_secret="s")
    with pytest.raises(errors.UnknownExchange, match="market_type"):
        ExchangeFactory.create_exchange(exchange_type="binance", market_type="spott")


async def test_paper_needs_no_credentials() -> None:
    async with ExchangeFactory.create_exchange(exchange_type=ExchangeType.PAPER) as paper:
        order = await paper.execute_trade(symbol="BTC/USDT", side="sell", amount="0.5")
        assert order.status == "closed"
        assert (await paper.get_positions())["BTC"].amount == Decimal("9.5")

"""The exchange module on its own (no broker, no worker settings), as the seed document
writes it, against a local exchange server from ``worker.lab.sim``.

    python examples/exchange_standalone.py --exchange binance            # spot
    python examples/exchange_standalone.py --exchange bybit --market swap

Without ``--url`` it starts the matching local server on a free port with a throw-away
key. Against a real testnet, pass ``--url ''`` and set OW_API_KEY / OW_API_SECRET.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from decimal import Decimal

from worker.exchange.factory import ExchangeFactory, ExchangeType
from worker.exchange.models import Balance
from worker.lab.sim.binance import BinanceSim
from worker.lab.sim.bybit import BybitSim

DEMO_KEY, DEMO_SECRET = "example-key-0001", "example-secret-0001"


async def trade(exchange_type: ExchangeType, market: str, url: str | None,
                api_key: str, api_secret: str) -> None:
    symbol = "BTC/USDT" if market == "spot" else "BTC/USDT:USDT"
    extra: dict[str, object] = {"market_type": market}
    if url:
        extra["urls"] = {"rest": url}
    exchange = ExchangeFactory.create_exchange(exchange_type=exchange_type, api_key=api_key,
                                               api_secret=api_secret, testnet=True, **extra)
    async with exchange:
        price = await exchange.get_ticker_price(symbol)
        balances = await exchange.get_balances()
        usdt = balances.get("USDT", Balance(0))
        amount = min(usdt.available / price * Decimal("0.95"), Decimal("0.01"))
        order = await exchange.execute_trade(symbol=symbol, side="buy", amount=amount)
        positions = await exchange.get_positions()
        fees = await exchange.get_trading_fees()
        candles = await exchange.fetch_ohlcv(symbol, "1m", 5)
        history = await exchange.get_order_history(symbol)
        value = await exchange.get_portfolio_value("USDT")
    print(f"price {price} | USDT available {usdt.available}")
    print(f"order {order.client_order_id} -> {order.status}, filled {order.filled} "
          f"at {order.average}, fee {order.fees}")
    held = positions.get(symbol) if hasattr(positions, "get") else None
    print(f"position {held.side if held else '-'} {held.amount if held else 0} | "
          f"fee {symbol}: {fees[symbol].taker if symbol in fees else '?'} | "
          f"{len(candles)} candles | {len(history)} orders | portfolio {value:.2f} USDT")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--exchange", choices=["binance", "bybit"], default="binance")
    parser.add_argument("--market", choices=["spot", "swap"], default="spot")
    parser.add_argument("--url", default=None, help="REST base; '' for ccxt's testnet")
    args = parser.parse_args()
    kind = ExchangeType(args.exchange)
    if args.url is not None:
        await trade(kind, args.market, args.url or None, os.environ.get("OW_API_KEY", ""),
                    os.environ.get("OW_API_SECRET", ""))
        return
    sim = (BinanceSim if kind is ExchangeType.BINANCE else BybitSim)({DEMO_KEY: DEMO_SECRET})
    url = await sim.start()
    try:
        await trade(kind, args.market, url, DEMO_KEY, DEMO_SECRET)
    finally:
        await sim.stop()


if __name__ == "__main__":
    asyncio.run(main())

"""Read-only calls of the ccxt adapters (prices, candles, balances, positions, fees); no
ccxt import: they go through the adapter's ``_call`` (retry + error translation)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Literal

from worker.errors import PermanentError, TransientError
from worker.exchange.ccxt_parse import to_decimal
from worker.exchange.models import Balance, Candle, Position, TradingFee
from worker.exchange.seed_api import Positions
from worker.settings import ExchangeConfig


class CcxtReads:
    client: Any
    config: ExchangeConfig

    async def _call(self, op: str, fn: Any, *args: Any, **kw: Any) -> Any:
        raise NotImplementedError

    async def get_ticker_price(self, symbol: str) -> Decimal:
        t = await self._call("fetch_ticker", self.client.fetch_ticker, symbol)
        price = t.get("last") or t.get("close")
        if price is None and t.get("bid") and t.get("ask"):
            price = (Decimal(str(t["bid"])) + Decimal(str(t["ask"]))) / 2
        if price is None:
            raise TransientError(f"no price in ticker for {symbol}")
        return Decimal(str(price))

    async def fetch_ohlcv(self, symbol: str, timeframe: str = "1m",
                          limit: int = 100) -> list[Candle]:
        rows = await self._call("fetch_ohlcv", self.client.fetch_ohlcv, symbol, timeframe,
                                None, limit)
        return [Candle(int(r[0]), *(Decimal(str(v)) for v in r[1:6])) for r in rows]


    async def get_balances(self) -> dict[str, Balance]:
        raw = await self._call("fetch_balance", self.client.fetch_balance)
        out = {}
        for asset, total in (raw.get("total") or {}).items():
            if total is None:
                continue
            free = raw.get("free", {}).get(asset) or 0
            used = raw.get("used", {}).get(asset) or 0
            out[asset] = Balance(asset=asset, free=Decimal(str(free)), used=Decimal(str(used)),
                                 total=Decimal(str(total)))
        return out

    async def get_portfolio_value(self, quote: str = "USDT") -> Decimal:
        total = Decimal(0)
        for asset, bal in (await self.get_balances()).items():
            if bal.total == 0:
                continue
            if asset == quote:
                total += bal.total
            elif f"{asset}/{quote}" in self.client.markets:
                total += bal.total * await self.get_ticker_price(f"{asset}/{quote}")
        return total

    async def get_positions(self) -> list[Position]:
        """Spot: base-asset holdings; derivatives: the exchange's positions. The list can
        also be indexed by symbol or base asset (``seed_api.Positions``)."""
        if self.config.market_type == "spot":
            return Positions(Position(symbol=asset, side="long", amount=b.total)
                             for asset, b in (await self.get_balances()).items() if b.total > 0)
        rows = await self._call("fetch_positions", self.client.fetch_positions)
        out = Positions()
        for p in rows:
            size = Decimal(str(p.get("contracts") or 0)) * Decimal(str(p.get("contractSize") or 1))
            side: Literal["long", "short", "flat"] = (
                "short" if p.get("side") == "short" else "long") if size else "flat"
            out.append(Position(symbol=p["symbol"], side=side,
                                amount=size, entry_price=to_decimal(p.get("entryPrice")),
                                unrealized_pnl=to_decimal(p.get("unrealizedPnl"))))
        return out

    async def get_trading_fees(self, symbols: Sequence[str] | None = None
                               ) -> dict[str, TradingFee]:
        """Maker/taker rates per symbol: the account's rates where the exchange reports
        them (ccxt fetchTradingFees / fetchTradingFee), else the market's listed rates."""
        raw: dict[str, Any] = {}
        if symbols is None and self.client.has.get("fetchTradingFees"):
            try:
                raw = await self._call("fetch_trading_fees", self.client.fetch_trading_fees)
            except PermanentError:  # e.g. Bybit spot: not supported, use market rates
                raw = {}
        elif symbols is not None and self.client.has.get("fetchTradingFee"):
            for s in symbols:
                raw[s] = await self._call("fetch_trading_fee", self.client.fetch_trading_fee, s)
        out = {}
        for s in (list(self.client.markets) if symbols is None else symbols):
            fee = raw.get(s) or self.client.market(s)
            if fee.get("maker") is None or fee.get("taker") is None:
                continue
            out[s] = TradingFee(symbol=s, maker=Decimal(str(fee["maker"])),
                                taker=Decimal(str(fee["taker"])))
        return out

"""The ccxt adapters' shared and cached state (no ccxt import): the request budget that
governs every call instead of ccxt's limiter, markets loaded once per exchange, and the
risk check's inputs from cache (``venue.TickerCache``, ``ledger.BalanceLedger``)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from worker.errors import TransientError
from worker.exchange.budget import UNLIMITED, AccountBudget, RateSpec
from worker.exchange.ccxt_reads import CcxtReads
from worker.exchange.ledger import BalanceLedger, order_delta
from worker.exchange.models import Balance, OrderState
from worker.exchange.venue import Venue, pick_prices


class CcxtCached(CcxtReads):
    venue: Venue
    budget: AccountBudget
    ledger: BalanceLedger

    @classmethod
    def rate_spec(cls, market_type: str) -> RateSpec:
        """The exchange's documented limits (generic ccxt exchanges: none known, so
        ccxt's own limiter stays on for them)."""
        return UNLIMITED

    def attach(self, venue: Venue | None) -> None:
        spec = self.rate_spec(self.config.market_type) if self.config.rate_limit else UNLIMITED
        self.venue = venue or Venue(spec,
                                    share=self.config.rate_share,
                                    ticker_refresh_s=self.config.ticker_refresh_s)
        self.budget = AccountBudget(self.venue.budget)
        self.ledger = BalanceLedger(self.config.balance_refresh_s)

    @property
    def governs_rate(self) -> bool:
        """Our budget governs (ccxt's per-call delay off) when the limits are known."""
        return self.config.rate_limit and bool(self.venue.budget.spec.ip_windows)

    def hook_responses(self, client: Any) -> None:
        """Feed every HTTP answer's usage headers and status to the budget."""
        original = client.on_rest_response
        budget = self.budget

        def on_rest_response(code: Any, reason: Any, url: Any, method: Any,
                             headers: Mapping[str, str], body: Any, *rest: Any) -> Any:
            budget.on_response(headers or {}, code if isinstance(code, int) else None,
                               url if isinstance(url, str) else "")
            return original(code, reason, url, method, headers, body, *rest)

        client.on_rest_response = on_rest_response

    async def load_markets_once(self) -> None:
        venue = self.venue
        async with venue.markets_lock:
            if venue.markets is None:
                await self._call("load_markets", self.client.load_markets)
                venue.markets = (self.client.markets, self.client.currencies)
            else:
                self.client.set_markets(*venue.markets)

    async def _tickers(self, symbols: list[str]) -> dict[str, Decimal]:
        if len(symbols) == 1 or not self.client.has.get("fetchTickers"):
            return {s: await self.get_ticker_price(s) for s in symbols}
        raw = await self._call("fetch_tickers", self.client.fetch_tickers, symbols)
        return pick_prices(raw, symbols)

    async def risk_price(self, symbol: str, max_age_s: float) -> tuple[Decimal | None, float]:
        """The cached last price of ``symbol`` and its age in seconds. TransientError
        when no fresh one could be had because the exchange failed (retried by the
        caller); an answer without the symbol leaves the price old (refused)."""
        tickers = self.venue.tickers
        price, age = await tickers.price(symbol, self._tickers, max_age_s)
        if (price is None or age > max_age_s) and tickers.error is not None:
            raise TransientError(f"no fresh price of {symbol}: {tickers.error}")
        return price, age

    async def risk_balances(self) -> dict[str, Balance]:
        """Balances from the ledger (the exchange's last answer + our own orders since)."""
        return await self.ledger.get(self.get_balances)

    def on_placed(self, state: OrderState) -> None:
        """A create answered: move the ledger by the order (spot; derivatives margin is
        left to the next refresh)."""
        if self.config.market_type != "spot":
            return
        market = self.client.market(state.symbol)
        self.ledger.apply(order_delta(state, market["base"], market["quote"]))

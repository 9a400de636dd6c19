"""Binance's rate limits as the simulator applies them: request weight per clock minute
per IP (every caller of the simulator is one IP), orders per 10 s and per day per API
key, reported on every answer like Binance does (``X-MBX-USED-WEIGHT-1M``, and on
order endpoints ``X-MBX-ORDER-COUNT-10S`` / ``-1D``). With ``enforce`` a request over
the weight limit gets 429 with ``Retry-After`` (seconds to the next minute)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

SPOT_WEIGHTS = {
    ("GET", "/api/v3/order"): 4, ("POST", "/api/v3/order"): 1, ("DELETE", "/api/v3/order"): 1,
    ("GET", "/api/v3/openOrders"): 6, ("GET", "/api/v3/allOrders"): 20,
    ("GET", "/api/v3/myTrades"): 20, ("GET", "/api/v3/account"): 20,
    ("GET", "/api/v3/exchangeInfo"): 20, ("GET", "/api/v3/ticker/24hr"): 2,
    ("GET", "/api/v3/ticker/price"): 2, ("GET", "/api/v3/klines"): 2,
    ("GET", "/fapi/v1/order"): 1, ("POST", "/fapi/v1/order"): 0,
    ("GET", "/fapi/v2/account"): 5, ("GET", "/fapi/v2/balance"): 5,
    ("GET", "/fapi/v1/exchangeInfo"): 1,
}
"""Documented weights (the ``symbol``-less variants of openOrders/ticker cost more)."""
HEAVY_WITHOUT_SYMBOL = {"/api/v3/openOrders": 80, "/api/v3/ticker/24hr": 80}


def weight_of(method: str, path: str, has_symbol: bool, n_symbols: int = 1) -> int:
    if path == "/api/v3/ticker/24hr" and n_symbols > 1:
        return 2 if n_symbols <= 20 else (40 if n_symbols <= 100 else 80)
    if not has_symbol and path in HEAVY_WITHOUT_SYMBOL and method == "GET":
        return HEAVY_WITHOUT_SYMBOL[path]
    return SPOT_WEIGHTS.get((method, path), 1)


@dataclass
class Limits:
    weight_limit: int = 6000
    enforce: bool = False
    minute: int = 0
    used: int = 0
    total_weight: int = 0
    orders: dict[str, list[float]] = field(default_factory=dict)
    """API key -> [10 s window start, its orders, day start, the day's orders]."""

    def spend(self, weight: int) -> tuple[int, float | None]:
        """(weight used this minute, seconds to wait when refused)."""
        now = time.time()
        minute = int(now // 60)
        if minute != self.minute:
            self.minute, self.used = minute, 0
        if self.enforce and self.used + weight > self.weight_limit:
            return self.used, 60 - now % 60
        self.used += weight
        self.total_weight += weight
        return self.used, None

    def order(self, key: str) -> tuple[int, int]:
        """Count one order of ``key``: (orders in this 10 s window, orders today)."""
        now = time.time()
        c = self.orders.setdefault(key, [0.0, 0, 0.0, 0])
        if c[0] != now - now % 10:
            c[0], c[1] = now - now % 10, 0
        if c[2] != now - now % 86_400:
            c[2], c[3] = now - now % 86_400, 0
        c[1] += 1
        c[3] += 1
        return int(c[1]), int(c[3])

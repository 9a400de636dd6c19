"""Where ``make demo`` sends its orders: the in-process paper exchange (default) or,
with ``EXCHANGE=binance|bybit``, local servers speaking that exchange's REST API
(``worker.lab.sim``), reached by the worker through the real ccxt client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from worker.lab.sim.binance import BinanceSim
from worker.lab.sim.bybit import BybitSim

VENUES = ("paper", "binance", "bybit")
KEY, SECRET = "demo-key-000001", "demo-secret-000001"


@asynccontextmanager
async def venue(name: str) -> AsyncIterator[tuple[dict[str, Any], dict[str, str]]]:
    """(exchanges config, credential env) for exchanges ``name`` and ``name_thin`` (a book
    filling a quarter of an order per tick); local servers run while inside."""
    if name not in VENUES:
        raise SystemExit(f"EXCHANGE={name!r} is not one of {', '.join(VENUES)}")
    if name == "paper":
        yield {"paper": {}, "paper_thin": {"driver": "paper", "paper_fill_ratio": "0.25"}}, {}
        return
    sim_class = BinanceSim if name == "binance" else BybitSim
    sims = [sim_class({KEY: SECRET}), sim_class({KEY: SECRET}, fill_ratio="0.25")]
    try:
        urls = [await s.start() for s in sims]
        exchanges = {n: {"driver": name, "live": True, "urls": {"rest": url}}
                     for n, url in zip((name, f"{name}_thin"), urls, strict=True)}
        env = {f"OW_CRED_ALICE_{n.upper()}_{field}": value for n in exchanges
               for field, value in (("API_KEY", KEY), ("SECRET", SECRET))}
        print(f"local {name} servers: {', '.join(urls)} (real ccxt client)")
        yield exchanges, env
    finally:
        for s in sims:
            await s.stop()

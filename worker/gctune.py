"""Garbage collection without stop-the-world pauses in the order path.

With ccxt loaded the worker holds ~200k long-lived objects (modules, markets, ccxt's
exchange classes); every full collection walked all of them (75-80 ms with the event
loop stopped, about once per 1,000 orders). After start-up they are moved out of the
collector's sight (``gc.freeze``), again after each exchange client is built (markets
loaded), and the young-generation threshold is raised so short-lived per-order
objects die in cheap young collections instead of being promoted.
"""

from __future__ import annotations

import gc

THRESHOLDS = (20_000, 20, 50)
"""gen0 allocations before a young collection; young collections per gen1; gen1 per
full collection (CPython also skips a full one until the unfrozen heap grew by 25 %)."""


def settle_heap() -> None:
    """Start-up done: collect once, freeze what survived, tune the thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


def freeze_new() -> None:
    """A long-lived structure was just built (an exchange client): freeze it too.
    No collection (that would be the pause we avoid); cheap."""
    gc.freeze()

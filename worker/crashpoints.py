"""Deliberate process crashes at named steps, for fault-injection tests only.

``OW_CRASH_POINTS="after_create:0.05,before_ack:0.02"`` makes the worker
``os._exit`` (like SIGKILL: no cleanup, no ack) at those steps with those
probabilities. Empty (the default) costs one dict lookup per step.

Steps: before_create, after_create, after_accepted, before_ack.
"""

from __future__ import annotations

import logging
import os
import random

log = logging.getLogger(__name__)
POINTS = ("before_create", "after_create", "after_accepted", "before_ack")


class CrashPoints:
    def __init__(self, spec: str = "", seed: int | None = None) -> None:
        self.rates: dict[str, float] = {}
        for item in filter(None, (s.strip() for s in spec.split(","))):
            name, _, rate = item.partition(":")
            if name not in POINTS:
                raise ValueError(f"unknown crash point {name!r}")
            self.rates[name] = float(rate or 1)
        self._rng = random.Random(seed)

    def hit(self, point: str) -> None:
        rate = self.rates.get(point)
        if rate and self._rng.random() < rate:
            log.critical("crash point %s: exiting", point)
            logging.shutdown()
            os._exit(86)


NO_CRASH = CrashPoints()

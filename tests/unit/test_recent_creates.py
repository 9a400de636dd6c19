"""RecentCreates forgets ids older than keep_s, a few per call, at constant cost."""

from __future__ import annotations

import time

from worker.orders.registry import RecentCreates


def test_keeps_young_forgets_old() -> None:
    rc = RecentCreates(keep_s=10.0)
    for i in range(100):
        rc.ended(f"c{i}", at=float(i))
    assert rc.last("c92") == 92.0
    assert rc.last("c85") is None  # older than keep_s at t=99
    rc.ended("c95", at=100.0)  # sent again: moves to the end with its new time
    assert rc.last("c95") == 100.0
    for i in range(100, 130):
        rc.ended(f"c{i}", at=float(i))
    assert rc.last("c95") is None and rc.last("c125") == 125.0
    assert len(rc._ended) <= 12


def test_cost_does_not_grow_with_young_ids() -> None:
    rc = RecentCreates(keep_s=600.0)
    start = time.process_time()
    for i in range(30_000):  # all younger than keep_s: none may be dropped
        rc.ended(f"c{i}")
    assert rc.last("c0") is not None and rc.last("c29999") is not None
    assert time.process_time() - start < 1.0  # was ~3 ms per call past 10,000 ids

"""Deterministic simulation of the placement protocol (issue 10), in make test.

10,000 seeded schedules drive the real consumer, handlers, placement and tracker against
a simulated exchange and broker on virtual time (``worker.lab.sim_placement``). The
gated profile leaves out the fault space of defects still open (``known.OPEN``);
``make sim`` runs everything. A failure prints the seed and how to replay it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from worker.lab.sim_placement.known import FULL, GATED, OPEN, TOLERATED, Profile
from worker.lab.sim_placement.run import run_many, run_one
from worker.lab.sim_placement.schedule import FAULT_KINDS
from worker.lab.sim_placement.vclock import virtual_clocks

SCHEDULES = 10_000


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ten_thousand_schedules_keep_the_invariants(
        record_property: Callable[[str, object], None]) -> None:
    summary = run_many(range(SCHEDULES), GATED)
    report = summary.report(GATED)
    # printed at the end of the run by tests/conftest.py (also from xdist workers)
    record_property("placement_simulation",
                    report + "\ngated off (open defects): " + "; ".join(OPEN))
    assert summary.schedules == SCHEDULES
    assert all(summary.hits[k] > 0 for k in FAULT_KINDS if k in GATED.faults), report
    assert not summary.untolerated(), report


def test_a_seed_replays_identically() -> None:
    with virtual_clocks():
        a, b = run_one(20_251_125), run_one(20_251_125)
    assert a.world.trace == b.world.trace and a.world.trace
    assert [e for _, _, e in a.world.events] == [e for _, _, e in b.world.events]


UNFENCED = Profile(faults=GATED.faults | {"unfenced"}, max_skew_s=GATED.max_skew_s)
LAGGING = Profile(faults=GATED.faults | {"lookup_lag"})


@pytest.mark.parametrize("seed, profile", [(8631, GATED), (1987, UNFENCED), (63, LAGGING),
                                           (319, FULL), (4390, FULL)])
def test_fixed_defects_stay_fixed(seed: int, profile: Profile) -> None:
    """8631: 0.9 s of clock skew placed a second order (issue 10 #1); 1987: a partitioned
    worker created after fence_s (issue 10 #2); 63: a lookup lagging 0.9 s behind a create
    this worker had sent for an earlier copy of the command placed it again. Closed by the
    settle window counted from signing plus clock skew and lookup lag, the broker fence, and
    trusting "absent" after this process's own create only once its window has passed.
    319: a first delivery whose lookup was refused (auth) answered OrderRejected and a later
    copy placed the order; 4390: a redelivered copy, after its settle wait, placed an order
    the tracker had meanwhile confirmed absent. Now a refused lookup hands the command to
    the tracker, and a copy re-checks the registry after its wait."""
    with virtual_clocks():
        r = run_one(seed, profile)
    assert not r.violations, r.violations


@pytest.mark.parametrize("seed, why, profile", [
    (2745, "unfenced", UNFENCED)])
@pytest.mark.xfail(reason="open defect (see worker.lab.sim_placement.known.OPEN)",
                   strict=False)
def test_open_defects(seed: int, why: str, profile: Profile) -> None:
    """Each seed showed its defect when written; after a fix (or a change of the
    schedule generator) it may pass for other reasons: rerun ``make sim`` in FULL."""
    assert why in OPEN or why in TOLERATED
    with virtual_clocks():
        r = run_one(seed, profile)
    assert not r.violations, r.violations

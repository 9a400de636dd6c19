"""Deterministic simulation of the placement protocol (issue 10), in make test.

10,000 seeded schedules drive the real consumer, handlers, placement and tracker against
a simulated exchange and broker on virtual time (``worker.lab.sim_placement``): 8,000 in
the full default fault space, 2,000 more with zombies that outlive ``fence_s``
(``unfenced``). No defect is open (``known.OPEN``) and no violation kind is tolerated
(``known.TOLERATED``); ``make sim`` runs more. A failure prints the seed and how to
replay it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from worker.lab.sim_placement.known import FULL, GATED, OPEN, TOLERATED, UNFENCED, Profile
from worker.lab.sim_placement.run import run_many, run_one
from worker.lab.sim_placement.schedule import FAULT_KINDS
from worker.lab.sim_placement.vclock import virtual_clocks

SCHEDULES, ZOMBIES = 10_000, 2_000


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ten_thousand_schedules_keep_the_invariants(
        record_property: Callable[[str, object], None]) -> None:
    full = run_many(range(SCHEDULES - ZOMBIES), GATED)
    zombies = run_many(range(SCHEDULES - ZOMBIES, SCHEDULES), UNFENCED)
    report = full.report(GATED) + "\n" + zombies.report(UNFENCED)
    if OPEN:
        report += "\ngated off (open defects): " + "; ".join(OPEN)
    # printed at the end of the run by tests/conftest.py (also from xdist workers)
    record_property("placement_simulation", report)
    assert full.schedules + zombies.schedules == SCHEDULES
    assert all(full.hits[k] > 0 for k in FAULT_KINDS if k in GATED.faults), report
    assert zombies.hits["partition"] > 0, report
    assert not full.untolerated() and not zombies.untolerated(), report


def test_a_seed_replays_identically() -> None:
    with virtual_clocks():
        a, b = run_one(20_251_125), run_one(20_251_125)
    assert a.world.trace == b.world.trace and a.world.trace
    assert [e for _, _, e in a.world.events] == [e for _, _, e in b.world.events]


OLD = Profile(faults=FULL.faults - {"record_lag"})
"""The fault space before ``record_lag`` joined it (a seed's schedule depends on it)."""
OLD_UNFENCED = Profile(faults=UNFENCED.faults - {"record_lag"})
LAGGING = Profile(faults=OLD.faults | {"lookup_lag"})
NO_SYMBOL = Profile(faults=FULL.faults | {"no_symbol"})


@pytest.mark.parametrize("seed, profile", [
    (8631, OLD), (1987, OLD_UNFENCED), (63, LAGGING), (319, OLD), (4390, OLD),
    (2745, OLD_UNFENCED), (2428, OLD), (9170, OLD), (10272, OLD), (18849, OLD),
    (11020, OLD), (10094, OLD_UNFENCED), (14326, OLD_UNFENCED), (16024, OLD_UNFENCED),
    (376, FULL), (1123, FULL), (3396, FULL), (24306, FULL), (71840, FULL), (79876, FULL),
    (21179, UNFENCED), (10222, UNFENCED), (27212, UNFENCED), (362, NO_SYMBOL)])
def test_fixed_defects_stay_fixed(seed: int, profile: Profile) -> None:
    """8631: 0.9 s of clock skew placed a second order (issue 10 #1); 1987: a partitioned
    worker created after fence_s (issue 10 #2); 63: a lookup lagging 0.9 s behind a create
    this worker had sent for an earlier copy of the command placed it again. Closed by the
    settle window counted from signing plus clock skew and lookup lag, the broker fence, and
    trusting "absent" after this process's own create only once its window has passed.
    319: a first delivery whose lookup was refused (auth) answered OrderRejected and a later
    copy placed the order; 4390: a redelivered copy, after its settle wait, placed an order
    the tracker had meanwhile confirmed absent. Now a refused lookup hands the command to
    the tracker, and a copy re-checks the registry after its wait.
    2745: a partitioned worker's cancel handler, resumed after the redelivery, published
    cancel_rejected(order_not_found) for an order the new holder placed (now: "not found"
    only with a fence proven after the lookup). 2428: a CancelOrder copy, after its
    cancel_rejected(retries_exhausted) was stored unconfirmed, joined the order and got
    cancel_done too (now: outcomes are remembered, copies repeat them). 9170 and 10272
    failed with a first version of that change (on main their schedules happen to pass): a
    copy of a command the tracker had confirmed not placed, arriving after it forgot that,
    placed it; a copy trusted a pending entry whose record was never confirmed, and the
    command was lost (now: not_placed is remembered; the copy confirms the record). 18849:
    a record copy whose renewal failed came back and was dropped as a spare (now: spare
    only after a confirmed renewal). 11020, and on main 10094/14326/16024 (unfenced): a
    tracker concluded not_placed for a pending entry it never made durable while the
    command's next holder placed the order (now: only durable entries are concluded).
    With tracking records late (``record_lag``, as behind a command backlog): 376, 1123,
    3396: a PlaceOrder copy on a new shard owner was placed against the cancel's published
    order_not_found (now: a new owner reads the shard's memo queue first); 24306: a
    tombstone whose record was never confirmed stood behind a published refusal and a
    not_found (now: both confirm it first); 71840: a cancel that joined a pending order
    whose not_placed another worker concluded from an older record copy got no outcome
    (now: it gets cancel_done); 21179: a zombie kept its own unconfirmed refusal over the
    broker's remembered outcome (now: the confirmed one wins); 10222: a client's re-sent
    copy was placed although a zombie tracker had concluded not_placed before it arrived
    (now: a copy reads every fact confirmed before it arrived). 79876, 27212 (a zombie's
    retries_exhausted, now fenced) and 362 (a cancel_done without the symbol the tracker's
    has) failed with a first version of that change.
    """
    with virtual_clocks():
        r = run_one(seed, profile)
    assert not r.violations, r.violations


def test_nothing_open_or_tolerated() -> None:
    """Issue 10's simulation judges its whole fault space."""
    assert not OPEN and not TOLERATED and GATED == FULL

"""What the simulation may not judge yet: open defects, each with the part of the fault
space that reaches it. ``make test`` runs the GATED profile and fails on any violation
except the TOLERATED kinds; ``make sim`` runs FULL and reports everything.

Remove an entry once its fix is merged: the FULL profile then has to stay clean.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.lab.sim_placement.schedule import DEFAULT_FAULTS


@dataclass(frozen=True)
class Profile:
    faults: frozenset[str] = DEFAULT_FAULTS
    max_skew_s: float = 1.0
    """Largest clock difference between a worker and the exchange."""


OPEN: dict[str, str] = {
    "unfenced": "issue 10 #2 (opt-in fault), what is left: creates are fenced, but a "
                "partitioned worker's cancel handler, resumed after fence_s, can still publish "
                "cancel_rejected(order_not_found) and a tombstone for an order that exists "
                "(make sim SEED=2745 GATED=1 FAULTS=+unfenced)",
}
TOLERATED: dict[str, str] = {
    "refusal_variants": "a copy of a refused command is judged afresh (refusals are not "
                        "remembered): two different refusals, no order (make sim SEED=2247)",
    "cancel_variants": "a CancelOrder redelivered after its outcome was published, with the "
                       "exchange unreachable, adds cancel_rejected (make sim SEED=2428)",
}
FULL = Profile()
GATED = Profile(faults=DEFAULT_FAULTS)

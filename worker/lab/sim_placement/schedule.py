"""Seeded schedules: which commands are published when, and which faults may strike.

A schedule is a pure function of its seed (and the enabled fault kinds), so printing
the seed is enough to replay it; ``describe`` prints what the seed chose.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

FAULT_KINDS = (
    "crash",          # a worker dies at its k-th await on a port (before or after the call)
    "partition",      # a worker loses the broker but keeps running; redelivered elsewhere
    "exch_skew",      # exchange clock off, up to +-max_skew (1 s) from every worker
    "worker_skew",    # worker wall clocks off by up to +-max_skew/2
    "create_delay",   # a create waits inside the exchange up to the acceptance window
    "unknown",        # -1007: execution status unknown, may execute later
    "lost_response",  # a create executed but its response was lost
    "read_fail",      # exchange reads fail transiently
    "read_outage",    # every exchange read fails for a while
    "read_refused",   # a read is refused (auth/permission), PermanentError
    "lookup_lag",     # lookups by client id miss orders younger than a lag
    "publish_fail",   # a broker publish is not confirmed (events may be stored anyway)
    "dup_publish",    # the same command published twice
    "cancel",         # a CancelOrder for the command, racing fills and timeouts
    "record_lag",     # tracking records come round 1-5 cycles late (a command backlog)
)
DEFAULT_FAULTS = frozenset(FAULT_KINDS)
OPT_IN = ("unfenced", "no_symbol")
"""``unfenced``: a partitioned worker's in-flight handlers outlive ``fence_s`` (issue 10 #2:
nothing on the sending side enforces that bound yet). ``no_symbol``: a schedule's
CancelOrders carry no symbol (only open orders can be listed)."""


@dataclass(frozen=True)
class Cmd:
    kind: str  # "place" or "cancel"
    command_id: str
    at: float
    dup_at: float | None = None
    order_type: str = "market"
    amount: str = "0.1"
    price: str | None = None
    timeout_s: float | None = None
    target: str | None = None
    fill_after_s: float | None = None
    """Limit orders: when the book fills it (None: never)."""


@dataclass(frozen=True)
class Crash:
    worker: str
    call: int
    """The worker's n-th port call (exchange or broker) ..."""
    after: bool
    """... dies after sending it (True) or before (False)."""


@dataclass(frozen=True)
class Partition:
    worker: str
    call: int
    detect_s: float
    """The broker notices after this long (heartbeat) and redelivers elsewhere."""
    zombie_s: float
    """The worker's in-flight handlers keep running this long after the redelivery."""


@dataclass(frozen=True)
class Schedule:
    seed: int
    commands: tuple[Cmd, ...]
    exch_skew: float = 0.0
    worker_skews: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)
    crashes: tuple[Crash, ...] = ()
    partition: Partition | None = None
    p_delay: float = 0.0
    p_unknown: float = 0.0
    p_lost: float = 0.0
    p_read_fail: float = 0.0
    read_outage: tuple[float, float] | None = None
    p_read_refused: float = 0.0
    lookup_lag_s: float = 0.0
    p_publish_fail: float = 0.0
    record_lag: float = 0.0
    """Cycles by which the tracking records come round late, as behind a command backlog
    (constant, so they keep their order)."""
    cancel_without_symbol: bool = False

    def describe(self) -> str:
        lines = [f"seed {self.seed}"]
        for c in self.commands:
            lines.append(f"  {c}")
        for f in dataclasses.fields(self):
            if f.name not in ("seed", "commands"):
                lines.append(f"  {f.name} = {getattr(self, f.name)}")
        return "\n".join(lines)


def generate(seed: int, faults: frozenset[str] = DEFAULT_FAULTS,
             fence_s: float = 5.0, max_skew_s: float = 1.0) -> Schedule:
    """``max_skew_s`` bounds the clock difference between any worker and the exchange."""
    rng = random.Random(seed)

    def on(kind: str, p: float) -> bool:
        return kind in faults and rng.random() < p

    cmds: list[Cmd] = []
    for n in range(rng.choice((1, 1, 2, 3))):
        at = rng.uniform(0, 3)
        dup = at + rng.uniform(0, 25) if on("dup_publish", 0.25) else None
        cid = f"s{seed}-{n}"
        if rng.random() < 0.5:
            cmds.append(Cmd("place", cid, at, dup))
        else:
            timeout = rng.choice((None, rng.uniform(1, 20)))
            fill = rng.uniform(0, 15)  # a GTC order without a timeout must fill some day
            cmds.append(Cmd("place", cid, at, dup, order_type="limit", price="99",
                            timeout_s=timeout, fill_after_s=rng.choice((None, fill))
                            if timeout else fill))
        if on("cancel", 0.3):
            cmds.append(Cmd("cancel", f"x{seed}-{n}", at + rng.uniform(-1, 12), target=cid,
                            dup_at=None))
    crashes = []
    if on("crash", 0.35):
        crashes.append(Crash(rng.choice(("w1", "w1", "w2")), rng.randint(1, 14),
                             rng.random() < 0.5))
        if rng.random() < 0.3:
            crashes.append(Crash(rng.choice(("w2", "w3")), rng.randint(1, 14),
                                 rng.random() < 0.5))
    partition = None
    if on("partition", 0.25):
        zombie_max = fence_s * (3.0 if "unfenced" in faults else 0.95)
        partition = Partition(rng.choice(("w1", "w1", "w2")), rng.randint(1, 12),
                              rng.uniform(0.2, 10), rng.uniform(0, zombie_max))
    p_create = rng.choice((0.2, 0.5))
    outage = None
    if on("read_outage", 0.1):
        outage = (rng.uniform(0, 20), rng.uniform(1, 60))
    half = max_skew_s / 2
    skews = tuple(rng.uniform(-half, half) if on("worker_skew", 0.3) else 0.0
                  for _ in range(5))
    return Schedule(
        seed=seed, commands=tuple(sorted(cmds, key=lambda c: c.at)),
        exch_skew=rng.uniform(max(skews) - max_skew_s, min(skews) + max_skew_s)
        if on("exch_skew", 0.6) else 0.0,
        worker_skews=skews,
        crashes=tuple(crashes), partition=partition,
        p_delay=p_create if on("create_delay", 0.5) else 0.0,
        p_unknown=p_create if on("unknown", 0.4) else 0.0,
        p_lost=p_create if on("lost_response", 0.4) else 0.0,
        p_read_fail=rng.choice((0.05, 0.2, 0.4)) if on("read_fail", 0.4) else 0.0,
        read_outage=outage,
        p_read_refused=0.1 if on("read_refused", 0.1) else 0.0,
        lookup_lag_s=rng.uniform(0, 1.0) if on("lookup_lag", 0.3) else 0.0,
        p_publish_fail=0.15 if on("publish_fail", 0.2) else 0.0,
        record_lag=rng.uniform(1.0, 5.0) if on("record_lag", 0.5) else 0.0,
        cancel_without_symbol=on("no_symbol", 0.5),
    )

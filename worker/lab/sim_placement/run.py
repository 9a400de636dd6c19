"""Run many seeded schedules and summarise: schedules per fault kind, violations.

    python -m worker.lab.sim_placement [--n 10000] [--start 0] [--seed S] [--faults ...]

``--seed S`` replays one schedule and prints it with its trace; ``--faults`` takes
``+kind``/``-kind`` edits of the default set (``+unfenced`` adds the opt-in zombie that
outlives the fence).
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from worker.lab.sim_placement.check import check
from worker.lab.sim_placement.schedule import DEFAULT_FAULTS, FAULT_KINDS, OPT_IN, generate
from worker.lab.sim_placement.vclock import virtual_clocks
from worker.lab.sim_placement.world import World, current_worker
from worker.metrics import Metrics
from worker.settings import Settings, load_settings

SIM_ENV = {"OW_TRACK_POLL_S": "1.0", "OW_TRACK_CYCLE_S": "10"}


@dataclass
class Result:
    seed: int
    violations: list[str]
    hits: set[str]
    world: World


@dataclass
class Summary:
    schedules: int = 0
    hits: Counter[str] = field(default_factory=Counter)
    failed: list[Result] = field(default_factory=list)
    elapsed_s: float = 0.0
    virtual_s: float = 0.0

    def report(self, faults: frozenset[str]) -> str:
        kinds = [k for k in (*FAULT_KINDS, "cancel_race") if k in self.hits or k in faults]
        lines = [f"placement simulation: {self.schedules} schedules, "
                 f"{len(self.failed)} with violations, {self.elapsed_s:.1f} s "
                 f"({self.virtual_s / 3600:.1f} h simulated)",
                 "schedules per fault kind: " + ", ".join(
                     f"{k} {self.hits[k]}" for k in kinds)]
        for r in self.failed[:5]:
            lines.append(f"VIOLATION seed {r.seed}: " + "; ".join(r.violations))
            lines.append(f"  replay: make sim SEED={r.seed}" + _faults_arg(faults))
        return "\n".join(lines)


def _faults_arg(faults: frozenset[str]) -> str:
    edits = [f"-{k}" for k in sorted(DEFAULT_FAULTS - faults)]
    edits += [f"+{k}" for k in sorted(faults - DEFAULT_FAULTS)]
    return f" FAULTS={','.join(edits)}" if edits else ""


def parse_faults(spec: str) -> frozenset[str]:
    out = set(DEFAULT_FAULTS)
    for item in filter(None, (s.strip() for s in spec.split(","))):
        op, kind = (item[0], item[1:]) if item[0] in "+-" else ("+", item)
        if kind not in FAULT_KINDS and kind not in OPT_IN:
            raise SystemExit(f"unknown fault kind {kind!r}; known: "
                             f"{', '.join((*FAULT_KINDS, *OPT_IN))}")
        (out.add if op == "+" else out.discard)(kind)
    return frozenset(out)


def sim_settings() -> Settings:
    return load_settings(SIM_ENV)


def run_one(seed: int, faults: frozenset[str] = DEFAULT_FAULTS,
            settings: Settings | None = None, metrics: Metrics | None = None) -> Result:
    """One schedule (call inside ``virtual_clocks()``)."""
    settings = settings or sim_settings()
    sched = generate(seed, faults, settings.fence_s)
    random.seed(seed)  # the worker's retry jitter
    world = World(sched, settings, metrics or Metrics(), unfenced="unfenced" in faults)
    world.run()
    return Result(seed, check(world), world.hits, world)


def run_many(seeds: Iterable[int], faults: frozenset[str] = DEFAULT_FAULTS) -> Summary:
    settings, metrics, summary = sim_settings(), Metrics(), Summary()
    started = time.perf_counter()
    level = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with virtual_clocks():
            for seed in seeds:
                r = run_one(seed, faults, settings, metrics)
                summary.schedules += 1
                summary.hits.update(r.hits)
                summary.virtual_s += r.world.finished_at or 0.0
                if r.violations:
                    summary.failed.append(r)
    finally:
        logging.disable(level)
    summary.elapsed_s = time.perf_counter() - started
    return summary


class _TraceLogs(logging.Handler):
    """In a replay, the worker's own log lines join the trace (with the worker's name)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.world: World | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.world is not None:
            worker = current_worker.get()
            name = worker.name if worker is not None else "-"
            extra = record.__dict__.get("client_order_id", "")
            if record.exc_info and record.exc_info[1] is not None:
                extra = f"{record.exc_info[1]!r} {extra}"
            self.world.note(f"{name}: log {record.levelname.lower()} {record.getMessage()}"
                            f" {extra if isinstance(extra, str) else ''}"[:240])


def replay(seed: int, faults: frozenset[str]) -> Result:
    handler = _TraceLogs()
    logging.getLogger("worker").addHandler(handler)
    logging.getLogger("worker").setLevel(logging.INFO)
    World.on_create = lambda w: setattr(handler, "world", w)
    with virtual_clocks():
        r = run_one(seed, faults)
    print(r.world.sched.describe())
    print("trace:")
    print("\n".join(r.world.trace))
    print("faults hit:", ", ".join(sorted(r.hits)) or "none")
    print("violations:", "; ".join(r.violations) or "none")
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m worker.lab.sim_placement")
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--faults", default="")
    args = ap.parse_args(argv)
    faults = parse_faults(args.faults)
    if args.seed is not None:
        return 1 if replay(args.seed, faults).violations else 0
    summary = run_many(range(args.start, args.start + args.n), faults)
    print(summary.report(faults))
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())

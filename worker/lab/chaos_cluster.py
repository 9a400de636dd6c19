"""``make chaos-cluster``: ``make chaos`` on the local 3-node cluster, losing nodes.

Runs worker.lab.chaos (worker SIGKILLs, crash points, exchange faults) with every
component given all three node addresses, and adds, while orders flow:

1. SIGKILL of the node worker 0 is connected to, then that node is started again;
2. SIGKILL of the node leading the busiest command shard queue, then started again;
3. a clean restart (``rabbitmqctl stop``, start) of the node leading most shard queues.

Each fault waits until all three nodes are back, so two of three (a quorum) are always
up. Per fault it reports two times from the fault on, read off the durable event stream:

* ``recovery_s``: until every shard queue consumes again, i.e. a worker handled a command
  of each shard that the broker cannot have delivered before the fault (the definition
  and its proof: worker.lab.recovery). The verdict requires at most RECOVERY_LIMIT_S.
* ``probes_done_s``: until one probe order per shard, sent right after the fault, has
  its outcome. The probes queue behind the backlog that built up meanwhile, so this is
  mostly the time to work that off under the continuing worker kills; it is reported,
  and judged only in that every probe must get its outcome before the run ends (the
  run's drain limit, DRAIN_S after the last order).

Start the cluster first (``make cluster``); the run prints the same counts as ``make chaos``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

from schemas import PlaceOrder, client_order_id
from worker.broker.topology import shard_for
from worker.client import OrderClient
from worker.lab import cluster
from worker.lab.chaos import Chaos, Stage, ok, run
from worker.lab.recovery import Sent, recovery

SHARDS = 8


def _ctl_json(*args: str) -> list[dict[str, Any]]:
    """Ask the first node that answers (one may be down, or too slow on a busy machine)."""
    for node in cluster.nodes():
        if cluster.pid_of(node) is None:
            continue
        try:
            r = cluster.ctl(node, *args, "--formatter", "json", timeout_s=30)
        except subprocess.TimeoutExpired:
            continue
        if r.returncode == 0:
            return list(json.loads(r.stdout))
    return []


def _node(name_or_port: str | int) -> cluster.Node | None:
    for node in cluster.nodes():
        if name_or_port in (node.name, node.port):
            return node
    return None


def worker_node(index: int) -> cluster.Node | None:
    """The node holding worker ``index``'s connection (by its connection name)."""
    for conn in _ctl_json("list_connections", "port", "client_properties"):
        props = {key: value for key, _, value in conn["client_properties"]}
        if props.get("connection_name") == f"orderworker-{index}":
            return _node(conn["port"])
    return None


def shard_leaders(prefix: str) -> list[tuple[int, str]]:
    """(messages ready + unacked, leader node) of each command shard queue."""
    rows = _ctl_json("list_queues", "name", "messages", "leader")
    return [(int(r.get("messages") or 0), str(r.get("leader")))
            for r in rows if str(r["name"]).startswith(f"{prefix}.commands.")]


DRAIN_S = 600.0
"""How long the run waits after the last order for every command's outcome. Longer than
``make chaos``'s 300 s: three Raft nodes share the 2 cores with the workers, and the
backlog built up while nodes were down is worked off under continuing worker kills."""
RECOVERY_LIMIT_S = 60.0
"""A node fault passes if every shard consumes again within this (worker.lab.recovery)."""
PREFETCH = 16
"""The workers' prefetch in the chaos run (``OW_PREFETCH`` in worker.lab.chaos)."""


class NodeFaults:
    """The node-fault schedule as a ``Chaos.extra_faults`` entry, with its measurements.

    After each fault the node stays down until every shard consumed again (read live off
    the event stream, at most ``down_max_s``), then it is started again."""

    def __init__(self, first_after_s: float = 8.0, pause_s: float = 4.0,
                 down_max_s: float = 60.0) -> None:
        self.first_after_s, self.pause_s, self.down_max_s = (
            first_after_s, pause_s, down_max_s)
        self.faults: list[dict[str, Any]] = []
        self.probes: list[Sent] = []
        self.probe_ids: list[tuple[str, str]] = []
        self.sim_orders: dict[str, int] = {}
        self._stage: Stage | None = None
        self._accounts: dict[str, str] = {}
        self._t0 = 0.0

    async def __call__(self, stage: Stage) -> None:
        self._stage = stage
        try:
            await self._schedule(stage)
        except Exception as exc:  # recorded as a failed fault; the run must still clean up
            self.faults.append({"fault": f"schedule failed: {exc!r}", "node": None,
                                "t0": None, "probes": []})
        finally:
            self.sim_orders = stage.sim.orders_per_client_id()
        await asyncio.to_thread(cluster.start)  # leave all three nodes up

    async def _schedule(self, stage: Stage) -> None:
        chaos = stage.chaos
        async with OrderClient(chaos.amqp_url, prefix=chaos.prefix, shards=SHARDS,
                               watch="") as client:
            await asyncio.sleep(self.first_after_s)
            for n, fault in enumerate((self._kill_worker_node, self._kill_busiest_leader,
                                       self._restart_leader)):
                await self._measure(stage, client, n, fault)
                await asyncio.sleep(self.pause_s)

    def sent(self) -> list[Sent]:
        assert self._stage is not None
        chaos = self._stage.chaos
        accounts = self._accounts = (
            self._accounts or {c.command_id: c.account for _, c in chaos.commands()})
        return [Sent(cid, shard_for(accounts[cid], SHARDS), at)
                for cid, at in chaos.sent_at.items() if cid in accounts] + self.probes

    async def _measure(self, stage: Stage, client: OrderClient, n: int, fault: Any) -> None:
        what, node = await fault(stage.chaos)
        t0 = self._t0  # the moment the node was killed or told to stop
        probes = await self._probe(stage.chaos, client, n)
        self.faults.append({"fault": what, "node": node.name if node else None, "t0": t0,
                            "probes": probes})
        deadline = time.monotonic() + self.down_max_s
        live: float | None = None
        while time.monotonic() < deadline and live is None:
            await asyncio.sleep(1.0)
            live, _ = recovery(t0, self.sent(), stage.log.first_at, SHARDS, PREFETCH)
        print(f"  node fault {n + 1}: {what} ({node.name if node else '-'}); every shard "
              f"consumed again after {live}s (live reading)", flush=True)
        await asyncio.to_thread(cluster.start)  # bring the node back, all three clustered

    async def _probe(self, chaos: Chaos, client: OrderClient, n: int) -> list[str]:
        by_shard: dict[int, str] = {}
        for a in range(chaos.accounts):
            by_shard.setdefault(shard_for(f"ch{a}", SHARDS), f"ch{a}")
        ids = []
        for shard, account in sorted(by_shard.items()):
            cmd = PlaceOrder(command_id=f"probe-{n}-{shard}", account=account,
                             exchange="binance", symbol="BTC/USDT", side="buy", type="market",
                             amount="0.001", timeout_s=1.0, created_at=datetime.now(UTC))
            self.probe_ids.append((account, cmd.command_id))
            self.probes.append(Sent(cmd.command_id, shard, time.time()))
            ids.append(cmd.command_id)
            await client.send(cmd)
        return ids

    async def _kill_worker_node(self, chaos: Chaos) -> tuple[str, cluster.Node | None]:
        node = None
        for _ in range(20):  # worker 0 may be between a SIGKILL and its restart
            if (node := await asyncio.to_thread(worker_node, 0)) is not None:
                break
            await asyncio.sleep(0.5)
        self._t0 = time.time()
        if node is not None:
            cluster.kill_node(node)
        return "SIGKILL the node worker 0 is connected to", node

    async def _kill_busiest_leader(self, chaos: Chaos) -> tuple[str, cluster.Node | None]:
        rows = await asyncio.to_thread(shard_leaders, chaos.prefix)
        depth, leader = max(rows) if rows else (0, "")
        node = _node(leader)
        self._t0 = time.time()
        if node is not None:
            cluster.kill_node(node)
        return f"SIGKILL the leader of the busiest shard queue ({depth} messages)", node

    async def _restart_leader(self, chaos: Chaos) -> tuple[str, cluster.Node | None]:
        rows = await asyncio.to_thread(shard_leaders, chaos.prefix)
        leaders = [leader for _, leader in rows]
        node = _node(max(set(leaders), key=leaders.count)) if leaders else None
        self._t0 = time.time()
        if node is not None:
            await asyncio.to_thread(cluster.ctl, node, "stop")
            await asyncio.to_thread(cluster.wait_gone, node)
        return "clean restart of the node leading most shard queues", node

    def report(self) -> dict[str, object]:
        """Per fault: consumption recovery (the verdict's) and probe completion (reported:
        it includes working off the backlog in front of the probes)."""
        assert self._stage is not None
        log, sent = self._stage.log, self.sent()
        doubled = sum(self.sim_orders.get(client_order_id(a, c), 0) > 1
                      for a, c in self.probe_ids)
        details, recovered, probes_done = [], [], []
        for f in self.faults:
            rec, shard = (recovery(f["t0"], sent, log.first_at, SHARDS, PREFETCH)
                          if f["t0"] is not None else (None, None))
            done = [log.done_at[p] for p in f["probes"] if p in log.done_at]
            probe_s = (round(max(done) - f["t0"], 1)
                       if f["probes"] and len(done) == len(f["probes"]) else None)
            recovered.append(rec)
            probes_done.append(probe_s)
            details.append({"fault": f["fault"], "node": f["node"], "recovered_s": rec,
                            "slowest_shard": shard, "probes_done_s": probe_s})
        return {"node_faults": len(self.faults), "recovery_s": recovered,
                "probes_done_s": probes_done, "node_fault_details": details,
                "probe_orders": len(self.probe_ids), "probe_duplicate_orders": doubled}


def passed(result: dict[str, object]) -> bool:
    """The counts of ``make chaos`` are 0, no probe order doubled, every probe got its
    outcome before the run ended, and after each of the three node faults every shard
    consumed again within RECOVERY_LIMIT_S."""
    times, probes = result["recovery_s"], result["probes_done_s"]
    return (ok(result) and result["probe_duplicate_orders"] == 0
            and isinstance(times, list) and len(times) == 3
            and all(t is not None and t <= RECOVERY_LIMIT_S for t in times)
            and isinstance(probes, list) and None not in probes)


async def run_cluster(chaos: Chaos, faults: NodeFaults,
                      drain_timeout_s: float = DRAIN_S) -> dict[str, object]:
    await asyncio.to_thread(cluster.start)
    chaos.extra_faults.append(faults)
    result = await run(chaos, drain_timeout_s=drain_timeout_s)
    result.update(faults.report())
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--orders", type=int, default=3000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rate", type=float, default=40.0)
    p.add_argument("--kill-every-s", type=float, default=5.0)
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("aiormq", "aio_pika", "aiohttp"):  # expected: we kill their peers
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    chaos = Chaos(cluster.amqp_urls(), orders=args.orders, workers=args.workers,
                  rate_per_s=args.rate, kill_every_s=args.kill_every_s, broker_restart=False)
    print(f"chaos-cluster: {chaos.orders} orders, {chaos.workers} workers, 3 nodes, "
          f"prefix {chaos.prefix}", flush=True)
    result = asyncio.run(run_cluster(chaos, NodeFaults()))
    width = max(map(len, result))
    for key, value in result.items():
        print(f"  {key:<{width}}  {value}")
    verdict = passed(result)
    print("PASS: nodes lost, nothing lost, nothing doubled" if verdict else "FAIL")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())

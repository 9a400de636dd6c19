"""``make chaos-cluster``: ``make chaos`` on the local 3-node cluster, losing nodes.

Runs worker.lab.chaos (worker SIGKILLs, crash points, exchange faults) with every
component given all three node addresses, and adds, while orders flow:

1. SIGKILL of the node worker 0 is connected to, then that node is started again;
2. SIGKILL of the node leading the busiest command shard queue, then started again;
3. a clean restart (``rabbitmqctl stop``, start) of the node leading most shard queues.

Each fault waits until all three nodes are back, so two of three (a quorum) are always
up. Right after each fault one probe order per shard is sent; the time until every probe's
terminal event is on the durable audit queue is the time to recover consumption.
Start the cluster first (``make cluster``); the run prints the same counts as ``make chaos``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

from schemas import PlaceOrder, client_order_id
from worker.broker.topology import shard_for
from worker.client import OrderClient
from worker.lab import cluster
from worker.lab.chaos import Chaos, Stage, ok, run

SHARDS = 8


def _ctl_json(*args: str) -> list[dict[str, Any]]:
    """Ask the first node that answers (one may be down)."""
    for node in cluster.nodes():
        if cluster.pid_of(node) is None:
            continue
        r = cluster.ctl(node, *args, "--formatter", "json", timeout_s=30)
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


class NodeFaults:
    """The node-fault schedule as a ``Chaos.extra_faults`` entry, with its measurements."""

    def __init__(self, first_after_s: float = 8.0, pause_s: float = 4.0,
                 probe_timeout_s: float = 120.0) -> None:
        self.first_after_s, self.pause_s, self.probe_timeout_s = (
            first_after_s, pause_s, probe_timeout_s)
        self.results: list[dict[str, object]] = []
        self.probe_ids: list[tuple[str, str]] = []
        self.sim_orders: dict[str, int] = {}

    async def __call__(self, stage: Stage) -> None:
        try:
            await self._schedule(stage)
        except Exception as exc:  # recorded as a failed fault; the run must still clean up
            self.results.append({"fault": f"schedule failed: {exc!r}", "node": None,
                                 "recovered_s": None})
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

    async def _measure(self, stage: Stage, client: OrderClient, n: int, fault: Any) -> None:
        what, node = await fault(stage.chaos)
        hit = time.monotonic()
        probes = await self._probe(stage.chaos, client, n)
        recovered: float | None = None
        deadline = hit + self.probe_timeout_s
        while time.monotonic() < deadline:
            if probes <= stage.log.terminal_commands():
                recovered = round(time.monotonic() - hit, 1)
                break
            await asyncio.sleep(0.1)
        self.results.append({"fault": what, "node": node.name if node else None,
                             "recovered_s": recovered})
        print(f"  node fault {n + 1}: {what} ({node.name if node else '-'}); consumption "
              f"recovered in {recovered}s", flush=True)
        await asyncio.to_thread(cluster.start)  # bring the node back, all three clustered

    async def _probe(self, chaos: Chaos, client: OrderClient, n: int) -> set[str]:
        by_shard: dict[int, str] = {}
        for a in range(chaos.accounts):
            by_shard.setdefault(shard_for(f"ch{a}", SHARDS), f"ch{a}")
        ids = set()
        for shard, account in sorted(by_shard.items()):
            cmd = PlaceOrder(command_id=f"probe-{n}-{shard}", account=account,
                             exchange="binance", symbol="BTC/USDT", side="buy", type="market",
                             amount="0.001", timeout_s=1.0, created_at=datetime.now(UTC))
            self.probe_ids.append((account, cmd.command_id))
            ids.add(cmd.command_id)
            await client.send(cmd)
        return ids

    async def _kill_worker_node(self, chaos: Chaos) -> tuple[str, cluster.Node | None]:
        node = None
        for _ in range(20):  # worker 0 may be between a SIGKILL and its restart
            if (node := await asyncio.to_thread(worker_node, 0)) is not None:
                break
            await asyncio.sleep(0.5)
        if node is not None:
            cluster.kill_node(node)
        return "SIGKILL the node worker 0 is connected to", node

    async def _kill_busiest_leader(self, chaos: Chaos) -> tuple[str, cluster.Node | None]:
        rows = await asyncio.to_thread(shard_leaders, chaos.prefix)
        depth, leader = max(rows) if rows else (0, "")
        node = _node(leader)
        if node is not None:
            cluster.kill_node(node)
        return f"SIGKILL the leader of the busiest shard queue ({depth} messages)", node

    async def _restart_leader(self, chaos: Chaos) -> tuple[str, cluster.Node | None]:
        rows = await asyncio.to_thread(shard_leaders, chaos.prefix)
        leaders = [leader for _, leader in rows]
        node = _node(max(set(leaders), key=leaders.count)) if leaders else None
        if node is not None:
            await asyncio.to_thread(cluster.ctl, node, "stop")
            await asyncio.to_thread(cluster.wait_gone, node)
        return "clean restart of the node leading most shard queues", node

    def report(self) -> dict[str, object]:
        doubled = sum(self.sim_orders.get(client_order_id(a, c), 0) > 1
                      for a, c in self.probe_ids)
        times = [r["recovered_s"] for r in self.results]
        return {"node_faults": len(self.results), "recovery_s": times,
                "node_fault_details": self.results, "probe_orders": len(self.probe_ids),
                "probe_duplicate_orders": doubled}


def passed(result: dict[str, object]) -> bool:
    times = result["recovery_s"]
    return (ok(result) and result["probe_duplicate_orders"] == 0
            and isinstance(times, list) and len(times) == 3 and None not in times)


async def run_cluster(chaos: Chaos, faults: NodeFaults,
                      drain_timeout_s: float = 300.0) -> dict[str, object]:
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

"""On the local 3-node cluster: replicated quorum queues, and a worker that loses its
node mid-stream without losing or doubling an order.

Uses the cluster of ``make cluster`` when it runs (and leaves it running). Otherwise it
starts one (about 35 s on 2 cores) and removes it afterwards, when this machine has the
rabbitmq-server package and the cluster's ports are free; ``OW_TEST_CLUSTER=0`` skips.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator

import pytest

from tests.conftest import place
from tests.integration.harness import harness
from tests.unit.fakes import ScriptedPaper
from worker.lab import cluster
from worker.lab.testing import StaticExchanges

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def nodes() -> Iterator[list[cluster.Node]]:
    members = cluster.nodes()
    started = False
    if not all(cluster.pid_of(n) for n in members):
        if os.environ.get("OW_TEST_CLUSTER") == "0":
            pytest.skip("OW_TEST_CLUSTER=0")
        if not (cluster.RABBIT_BIN / "rabbitmq-server").exists():
            pytest.skip("no rabbitmq-server package for a local cluster")
        if busy := cluster.busy_ports():
            pytest.skip(f"cluster ports {busy} are taken (another cluster runs here)")
        cluster.start()
        started = True
    yield members
    if started:
        cluster.stop()
    elif not all(cluster.pid_of(n) for n in members):
        cluster.start()  # leave it as we found it: all three nodes up


def members_of(node: cluster.Node, prefix: str) -> dict[str, int]:
    r = cluster.ctl(node, "list_queues", "name", "members", "--formatter", "json")
    assert r.returncode == 0, r.stderr
    return {q["name"]: len(q["members"]) for q in json.loads(r.stdout)
            if q["name"].startswith(prefix) and ".client." not in q["name"]}


@pytest.mark.timeout(240)
async def test_worker_rides_out_the_loss_of_its_node(nodes: list[cluster.Node]) -> None:
    first, others = nodes[0], nodes[1:]
    urls = ",".join(n.url for n in nodes)  # the worker connects to owc1 first
    paper = ScriptedPaper()
    async with harness(urls, OW_QUORUM_GROUP_SIZE="3", OW_SHARDS="4") as h:
        worker = await h.start_worker(exchanges=StaticExchanges({"paper": paper}))
        assert worker.connection is not None and worker.connection.url.port == first.port
        # the client sits on a node that survives (its exclusive event queue dies with its
        # node; the durable audit queue does not)
        client = h.client()
        client.amqp_url = ",".join(n.url for n in reversed(nodes))
        async with client:
            members = await asyncio.to_thread(members_of, others[0], h.prefix)
            # per shard a command, a tracking and a memo queue; audit, dead letters, their
            # watcher, the shard contract (clients' exclusive event queues: not replicated)
            assert len(members) == 3 * 4 + 4 and set(members.values()) == {3}, members
            before = [place(account=f"a{i % 5}") for i in range(20)]
            for cmd in before:
                await client.send(cmd)
            await asyncio.gather(*(client.wait_terminal(c.command_id, 30) for c in before))

            assert cluster.kill_node(first)
            killed = time.monotonic()
            after = [place(account=f"a{i % 5}") for i in range(20)]
            for cmd in after:
                await client.send(cmd)
            await asyncio.gather(*(client.wait_terminal(c.command_id, 60) for c in after))
            recovered_s = time.monotonic() - killed
            print(f"all orders after the node kill done within {recovered_s:.1f}s")
            assert worker.connection.url.port != first.port
    commands = before + after
    assert paper.created == len(commands)  # one order per command, none twice
    for cmd in commands:
        kinds = [type(e).__name__ for e in client.history(cmd.command_id)]
        assert kinds == ["OrderAccepted", "OrderFilled"], (cmd.command_id, kinds)

"""One shard contract: workers record it, clients follow or refuse it, and the shard
count changes (orderworker reshard) without one account ever having two consumers."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid

import aio_pika
import pytest
from yarl import URL

from schemas import CancelDone, OrderAccepted, OrderCanceled, OrderFilled
from schemas.tracking import TrackBatch
from tests.conftest import cancel, place
from tests.integration.harness import harness
from tests.integration.test_cli_broker import cli
from worker.broker.connect import connect
from worker.broker.contract import TopologyError
from worker.broker.memo import RabbitMemory
from worker.broker.topology import Names, shard_for
from worker.client import NoWorkerError, OrderClient, TopologyMismatchError
from worker.lab.testing import StaticExchanges
from worker.orders.events import ref_of
from worker.orders.intake import parse
from worker.orders.registry import Entry


async def test_clients_and_workers_refuse_a_shard_count_the_workers_do_not_run(
        amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        await h.start_worker()
        with pytest.raises(TopologyMismatchError, match=r"use 4 shards .* this client uses 8: "
                                                        r"set OW_SHARDS=4"):
            async with OrderClient(amqp_url, prefix=h.prefix, shards=8):
                pass
        with pytest.raises(TopologyError, match="this worker uses 8"):
            await h.start_worker(shards=8)
        code, _, err = await cli("submit", "--amqp-url", amqp_url, "--prefix", h.prefix,
                                 "--shards", "8", "--account", "c1", "--symbol", "BTC/USDT",
                                 "--side", "buy", "--amount", "0.01")
        assert code == 2 and "use 4 shards" in err and "Traceback" not in err
        async with OrderClient(amqp_url, prefix=h.prefix) as client:  # follows the workers
            assert client.names.shards == 4
        conn = await connect(amqp_url)
        async with conn:  # the refused worker declared nothing
            with pytest.raises(aio_pika.exceptions.ChannelClosed):
                await (await conn.channel()).declare_queue(f"{h.prefix}.commands.7",
                                                           passive=True)


async def test_without_a_worker_the_client_names_the_prefix(amqp_url: str) -> None:
    prefix = f"owtest-none-{uuid.uuid4().hex[:6]}"
    async with OrderClient(amqp_url, prefix=prefix) as client:
        with pytest.raises(NoWorkerError, match=f"no worker has set up prefix '{prefix}'.*"
                                                f"OW_PREFIX={prefix}"):
            await client.send(place())


async def test_a_client_needs_no_configure_permission(amqp_url: str) -> None:
    url = URL(amqp_url.split(",")[0])
    ctl = shutil.which("rabbitmqctl")
    if ctl is None or url.host not in ("127.0.0.1", "localhost"):
        pytest.skip("needs rabbitmqctl for the local broker")
    user, password = f"owclient-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([ctl, "-q", *args], capture_output=True, timeout=60,
                              env=os.environ)

    if run("add_user", user, password).returncode != 0:
        pytest.skip("rabbitmqctl cannot manage this broker")
    try:  # configure only on its own server-named event queue; nothing of the topology
        assert run("set_permissions", "-p", "/", user, r"^owtest-[0-9a-f]+\.client\..*", ".*",
                   ".*").returncode == 0
        restricted = str(url.with_user(user).with_password(password))
        async with harness(amqp_url) as h:
            await h.start_worker()
            async with OrderClient(restricted, prefix=h.prefix) as client:
                events = await client.submit(place(account="perm1"), timeout_s=20)
        assert isinstance(events[-1], OrderFilled)
    finally:
        run("delete_user", user)


async def _misplaced(amqp_url: str, prefix: str, shards: int) -> list[str]:
    """Messages of any shard or tracking queue whose account belongs to another shard
    (looked at, then returned to their queues)."""
    names, wrong, seen = Names(prefix, shards), [], 0
    conn = await connect(amqp_url)
    async with conn:
        for k in range(shards):
            for name in (names.shard_queue(k), names.track_queue(k)):
                channel = await conn.channel()  # closed unacked: the messages go back
                await channel.set_qos(prefetch_count=100)
                queue = await channel.declare_queue(name, passive=True)
                left = queue.declaration_result.message_count or 0
                if left:
                    async with queue.iterator() as messages:
                        async for msg in messages:
                            seen, left = seen + 1, left - 1
                            item = parse(msg.body, tracking=True)
                            inner = item.records if isinstance(item, TrackBatch) else [item]
                            for one in inner:
                                account = getattr(one, "account", "?")
                                if shard_for(account, shards) != k:
                                    wrong.append(f"{account} in {name}")
                            if not left:
                                break
                await channel.close()
    assert seen, "nothing was queued to check"
    return wrong


async def test_changing_the_shard_count_moves_every_account_to_one_new_shard(
        amqp_url: str) -> None:
    shared = StaticExchanges()
    accounts = [f"rs{i}" for i in range(8)]
    async with harness(amqp_url, OW_TRACK_CYCLE_S="0.5") as h:
        worker = await h.start_worker(exchanges=shared)
        assert worker.tracker is not None
        tombstones = [Entry(ref=ref_of(place(account=a)), phase="tombstone",
                            expires_at=time.time() + 600) for a in accounts]
        await worker.tracker.persist(tombstones)  # facts in the memo queues, moved too
        reshard = ("reshard", "--amqp-url", amqp_url, "--prefix", h.prefix, "--settle-s",
                   "0.5", "--to")
        async with OrderClient(amqp_url, prefix=h.prefix, shards=4) as pinned, \
                OrderClient(amqp_url, prefix=h.prefix) as client:
            resting = [place(account=a, type="limit", price="57500", timeout_s=None)
                       for a in accounts]
            for c in resting:
                await client.send(c)
            for c in resting:
                assert isinstance(await client.wait_first(c.command_id, 20), OrderAccepted)
            code, _, err = await cli(*reshard, "6")
            assert code == 2 and "stop every worker first" in err, err
            await worker.stop()
            # queued while no worker runs: they must stay behind their accounts' orders
            market = [place(account=a) for a in accounts[:4]]
            cancel_0 = cancel(resting[0].command_id, account=accounts[0], symbol=None)
            for c in [*market, cancel_0]:
                await client.send(c)

            code, out, err = await cli(*reshard, "6")
            assert code == 0 and "4 -> 6 shards" in out, err
            assert await _misplaced(amqp_url, h.prefix, 6) == []
            with pytest.raises(TopologyMismatchError, match="use 6 shards"):
                await pinned.send(place(account="rs1"))
            with pytest.raises(TopologyError, match="use 6 shards"):
                await h.start_worker(exchanges=shared)  # still OW_SHARDS=4
            h.env["OW_SHARDS"] = "6"
            worker = await h.start_worker(exchanges=shared)
            for c in market:
                assert isinstance(await client.wait_terminal(c.command_id, 20), OrderFilled)
            done = await client.wait_outcome(cancel_0.command_id, 20)
            assert isinstance(done, CancelDone) and done.order_status == "canceled"
            await client.send(place(account="rs1"))  # a following client re-routes itself

            await worker.stop()  # and back down to 3, where shards 3..5 disappear
            code, out, err = await cli(*reshard, "3")
            assert code == 0 and "6 -> 3 shards" in out, err
            assert await _misplaced(amqp_url, h.prefix, 3) == []
            h.env["OW_SHARDS"] = "3"
            await h.start_worker(exchanges=shared)
            for c in resting[1:]:  # every resting order still has its follower
                outcome = await client.cancel(c, timeout_s=20)
                assert isinstance(outcome, CancelDone) and outcome.order_status == "canceled"
                assert isinstance(await client.wait_terminal(c.command_id, 20), OrderCanceled)
        conn = await connect(amqp_url)
        async with conn:
            memory = RabbitMemory(conn, Names(h.prefix, 3))
            for t in tombstones:
                facts = await memory.recall(shard_for(t.ref.account, 3))
                assert t.ref.client_order_id in {f.client_order_id for f in facts}
            with pytest.raises(aio_pika.exceptions.ChannelClosed):
                await (await conn.channel()).declare_queue(f"{h.prefix}.commands.5",
                                                           passive=True)

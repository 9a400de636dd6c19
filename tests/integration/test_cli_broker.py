"""CLI against the real broker: submit exit codes, dead letters listed and replayed."""

from __future__ import annotations

import asyncio
import json
import sys

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from schemas.commands import encode_command
from tests.conftest import place
from tests.integration.harness import Harness, harness
from worker.audit.consumer import AuditConsumer
from worker.audit.store import MemoryStore
from worker.broker.topology import shard_for


async def cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _broker(h: Harness) -> list[str]:
    return ["--amqp-url", h.amqp_url, "--prefix", h.prefix, "--shards", str(h.settings().shards)]


async def test_submit_exits_non_zero_on_a_rejected_order_and_prints_the_reason(
        amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        await h.start_worker()
        code, out, err = await cli("submit", *_broker(h), "--account", "cli2",
                                   "--symbol", "BTC/USDT", "--side", "buy", "--amount", "1000")
    assert code == 1, err
    assert '"kind":"order_rejected"' in out
    assert err.startswith("order rejected (risk_max_notional):")


async def test_submit_a_resting_order_then_cancel_it_without_a_symbol(amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        await h.start_worker()
        code, out, err = await cli("submit", *_broker(h), "--account", "cli4", "--symbol",
                                   "BTC/USDT", "--side", "buy", "--type", "limit", "--amount",
                                   "0.01", "--price", "57500", "--command-id", "cli4-limit",
                                   "--until", "accepted")
        assert code == 0 and '"kind":"order_accepted"' in out, err
        assert "cancel it with: orderworker submit --account cli4 --cancel cli4-limit" in err
        code, out, err = await cli("submit", *_broker(h), "--account", "cli4",
                                   "--cancel", "cli4-limit")
        assert code == 0 and '"kind":"cancel_done"' in out and '"order_status":"canceled"' \
            in out, err
        code, out, err = await cli("submit", *_broker(h), "--account", "cli4", "--cancel-all")
        assert code == 0 and '"kind":"cancel_all_done"' in out, err
        code, out, err = await cli("submit", *_broker(h), "--account", "cli4",
                                   "--cancel", "never-placed")
        assert code == 1 and err.startswith("cancel rejected (order_not_found):"), err


async def test_tools_work_beside_workers_with_another_delivery_limit(amqp_url: str) -> None:
    # the tools used to declare the shard queues with x-delivery-limit 5 and crash
    async with harness(amqp_url, OW_DELIVERY_LIMIT="15") as h:
        await h.start_worker()
        code, out, err = await cli("submit", "--amqp-url", amqp_url, "--prefix", h.prefix,
                                   "--account", "cli5", "--symbol", "BTC/USDT", "--side",
                                   "buy", "--amount", "0.01")
        assert code == 0 and '"kind":"order_filled"' in out, err
        audit = AuditConsumer(amqp_url, MemoryStore(), prefix=h.prefix)
        await audit.start()  # no PRECONDITION_FAILED
        await audit.stop()


async def test_submit_without_a_worker_says_what_to_check(amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        await h.start_worker()
        await h.workers[0].stop()  # topology declared, nobody consuming
        code, _, err = await cli("submit", *_broker(h), "--wait-s", "1", "--account", "cli3",
                                 "--symbol", "BTC/USDT", "--side", "buy", "--amount", "0.01")
    assert code == 3
    shard = shard_for("cli3", h.settings().shards)
    assert f"no worker is consuming shard {shard} of prefix '{h.prefix}'" in err, err
    assert f"start a worker with OW_PREFIX={h.prefix}" in err and "Traceback" not in err


async def test_deadletters_list_and_replay(amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        await h.start_worker()
        good = place(account="dl1", command_id="dl-good")
        async with h.client() as client:
            await client.publish_raw(b'{"kind": "place_order", "oops": 1}', "dl1",
                                     message_id="dl-bad")
            conn = await aio_pika.connect(amqp_url)
            async with conn:  # a valid command parked in the dead-letter queue
                ch = await conn.channel(publisher_confirms=True)
                dlx = await ch.get_exchange(h.names.dlx)
                await dlx.publish(aio_pika.Message(
                    encode_command(good), message_id="dl-good",
                    headers={"x-orderworker-reason": "retries_exhausted: test"}), "")
            for _ in range(50):
                code, out, err = await cli("deadletters", "list", "--json", *_broker(h))
                if len(out.splitlines()) == 2:
                    break
                await asyncio.sleep(0.2)
            letters = {d["command_id"] or "bad": d for d in map(json.loads, out.splitlines())}
            assert code == 0 and set(letters) == {"bad", "dl-good"}, err
            assert letters["bad"]["reason"].startswith("malformed")
            bad_id = letters["bad"]["message_id"]
            assert letters["dl-good"]["reason"] == "retries_exhausted: test"
            again = await cli("deadletters", "list", *_broker(h))  # listing removed nothing
            assert again[0] == 0 and "2 dead letter(s)" in again[1]
            code, out, err = await cli("deadletters", "replay", "dl-good", *_broker(h))
            assert code == 0 and "replayed dl-good" in out, err
            terminal = await client.wait_terminal("dl-good", timeout_s=30)
            assert type(terminal).__name__ == "OrderFilled"
            code, _, err = await cli("deadletters", "replay", bad_id, *_broker(h))
            assert code == 1 and "not a valid command" in err
            code, _, err = await cli("deadletters", "replay", "nope", *_broker(h))
            assert code == 1 and "no dead letter with message or command id 'nope'" in err
        _, out, _ = await cli("deadletters", "list", *_broker(h))
        assert bad_id in out and "dl-good" not in out and "1 dead letter(s)" in out


async def test_deadletters_list_shows_the_brokers_x_death(amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        await h.start_worker()
        await h.workers[0].stop()
        cmd = place(account="dl2", command_id="dl-xdeath")
        async with h.client() as client:
            await client.send(cmd)
        conn = await aio_pika.connect(amqp_url)
        async with conn:  # a consumer refusing it: the broker dead-letters it with x-death
            ch = await conn.channel()
            shard = shard_for("dl2", h.settings().shards)
            queue = await ch.declare_queue(h.names.shard_queue(shard), passive=True)
            refused = asyncio.Event()

            async def refuse(msg: AbstractIncomingMessage) -> None:
                await msg.reject(requeue=False)
                refused.set()

            tag = await queue.consume(refuse)
            await asyncio.wait_for(refused.wait(), 10)
            await queue.cancel(tag)
        for _ in range(50):
            code, out, err = await cli("deadletters", "list", "--json", *_broker(h))
            if out.strip():
                break
            await asyncio.sleep(0.2)
    assert code == 0, err
    [letter] = map(json.loads, out.splitlines())
    assert letter["command_id"] == "dl-xdeath" and letter["reason"] == "rejected"
    assert letter["x_death"][0]["reason"] == "rejected"
    assert letter["x_death"][0]["queue"].startswith(f"{h.prefix}.commands.")

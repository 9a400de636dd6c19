"""The bare aio-pika pipeline ``make bench`` compares the worker with.

Same topology and persistence as the worker (sharded quorum command queues,
same prefetch, persistent + mandatory + confirmed events into a quorum queue,
ack after confirm), but no exchange, risk, or tracking: decode the command,
publish two events (accepted, filled) as one confirmed batch, ack.
"""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from schemas import OrderAccepted, OrderFilled, PlaceOrder, client_order_id, event_id
from schemas.commands import decode_command
from worker.broker.connect import connect_robust
from worker.broker.contract import Contract, write_contract
from worker.broker.publisher import RabbitPublisher
from worker.broker.topology import Names, declare
from worker.settings import load_settings


async def main() -> None:
    s = load_settings()
    names = Names(s.prefix, s.shards)
    conn = await connect_robust(s.amqp_url, reconnect_interval=5.0)
    pub_channel = await conn.channel(publisher_confirms=True, on_return_raises=True)
    topo = await declare(pub_channel, names, s.delivery_limit, s.quorum_group_size)
    # the shard contract, as a worker writes it: OrderClient routes by it
    await write_contract(pub_channel, names, Contract(
        prefix=s.prefix, shards=s.shards, delivery_limit=s.delivery_limit,
        quorum_group_size=s.quorum_group_size, track_cycle_s=s.track_cycle_s))
    publisher = RabbitPublisher(topo.events, topo.dlx)
    channel = await conn.channel()
    await channel.set_qos(prefetch_count=s.prefetch)

    async def on_message(message: AbstractIncomingMessage) -> None:
        cmd = decode_command(message.body)
        assert isinstance(cmd, PlaceOrder)
        cid = client_order_id(cmd.account, cmd.command_id)
        amount = Decimal(cmd.amount)
        common: dict[str, Any] = {"command_id": cmd.command_id, "account": cmd.account,
                  "exchange": cmd.exchange, "symbol": cmd.symbol, "client_order_id": cid,
                  "occurred_at": datetime.now(UTC), "amount": amount}
        await publisher.publish([
            OrderAccepted(event_id=event_id(cid, "accepted"), sequence=0, **common),
            OrderFilled(event_id=event_id(cid, "filled"), sequence=1_000_001, filled=amount,
                        **common),
        ])
        await message.ack()

    for k in range(s.shards):
        queue = await channel.declare_queue(names.shard_queue(k), passive=True)
        await queue.consume(on_message)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await conn.close()


if __name__ == "__main__":
    from worker.cli import run_loop

    run_loop(main(), load_settings().event_loop)  # the worker's loop (OW_EVENT_LOOP)

"""Read back the dead-letter queue (operators, the demo, the chaos report)."""

from __future__ import annotations

from worker.broker.connect import connect
from worker.broker.topology import Names


async def drain_dead_letters(amqp_url: str, names: Names) -> list[tuple[bytes, str]]:
    """Remove every dead letter; return (body, reason) pairs. The reason is the worker's
    ``x-orderworker-reason``, else the broker's (e.g. ``delivery_limit``)."""
    out = []
    async with await connect(amqp_url) as conn:
        channel = await conn.channel()
        queue = await channel.declare_queue(names.dead_queue, passive=True)
        while (msg := await queue.get(fail=False)) is not None:
            headers = msg.headers or {}
            reason = headers.get("x-orderworker-reason") or headers.get("x-first-death-reason")
            out.append((msg.body, reason.decode() if isinstance(reason, bytes) else str(reason)))
            await msg.ack()
    return out

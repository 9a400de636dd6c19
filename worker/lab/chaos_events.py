"""Chaos-run observers: the durable event stream, deduplicated, and the dead letters."""

from __future__ import annotations

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from schemas import CancelRejected, OrderFailed, OrderRejected, RejectReason
from schemas.events import OUTCOME_EVENTS, decode_event, event_kind
from worker.broker.connect import connect_robust
from worker.broker.topology import Names


class EventLog:
    """Consumes ``<prefix>.events.audit`` with manual acks; counts redelivered duplicates."""

    def __init__(self, amqp_url: str, prefix: str) -> None:
        self.amqp_url, self.names = amqp_url, Names(prefix, 8)
        self.seen: set[str] = set()
        self.duplicates = 0
        self.kinds: dict[str, set[str]] = {}
        self.outcomes: dict[str, int] = {}
        self._terminal: set[str] = set()
        self.first_at: dict[str, float] = {}
        """Per command: when a worker made its first event (``occurred_at``, epoch s)."""
        self.done_at: dict[str, float] = {}
        """Per command: when a worker made its outcome event (``occurred_at``, epoch s)."""
        self.cancel_not_found: dict[str, bool] = {}
        self._conn: AbstractRobustConnection | None = None

    async def start(self) -> None:
        self._conn = await connect_robust(self.amqp_url, reconnect_interval=1.0)
        channel = await self._conn.channel()
        await channel.set_qos(prefetch_count=500)
        queue = await channel.declare_queue(self.names.audit_queue, passive=True)
        await queue.consume(self._on_event)

    async def _on_event(self, message: AbstractIncomingMessage) -> None:
        event = decode_event(message.body)
        if event.event_id in self.seen:
            self.duplicates += 1
        else:
            self.seen.add(event.event_id)
            self.kinds.setdefault(event.command_id, set()).add(event_kind(event))
            at = event.occurred_at.timestamp()
            self.first_at[event.command_id] = min(at, self.first_at.get(event.command_id, at))
            if isinstance(event, CancelRejected):
                self.cancel_not_found[event.command_id] = (
                    event.reason == RejectReason.ORDER_NOT_FOUND)
            if isinstance(event, OUTCOME_EVENTS):
                self._terminal.add(event.command_id)
                self.done_at.setdefault(event.command_id, at)
                label = event_kind(event)
                if isinstance(event, OrderRejected | OrderFailed | CancelRejected):
                    label += f":{event.reason.value}"
                self.outcomes[label] = self.outcomes.get(label, 0) + 1
        await message.ack()

    def terminal_commands(self) -> set[str]:
        return self._terminal

    async def stop(self) -> None:
        if self._conn is not None:
            await self._conn.close()


"""Turns shard-queue messages into handler calls and handler Outcomes into ack decisions.

* undecodable/invalid body -> OrderRejected (if a command_id can be read) + dead-letter, ack
  (so is a command published to another shard than its canonical account's)
* tracking record          -> the tracker refreshes and re-publishes it (confirmed), ack;
                              a record that did not come through ``<p>.tracking`` is
                              treated as malformed (only workers may feed the tracker)
* Outcome ack              -> ack (events already confirmed)
* Outcome retry            -> nack(requeue); the quorum delivery-limit bounds the loop
* Outcome dead_letter      -> confirmed copy to the DLX with the reason, then ack
* Outcome defer            -> confirmed copy round the shard's carousel, then ack (it comes
                              back, as a redelivery, behind every record on its way now)
* publishing/acking fails  -> nothing acked; the broker redelivers and we reconcile
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from schemas import OrderRejected, RejectReason, client_order_id
from schemas.tracking import TrackBatch, TrackOrder
from worker.broker.fence import BrokerFences
from worker.broker.publisher import RabbitPublisher
from worker.broker.topology import (
    DEFER_HEADER,
    REPUBLISH_HEADER,
    Names,
    shard_for,
    shard_of_key,
)
from worker.logs import bind
from worker.orders.events import OrderRef, refusal
from worker.orders.handlers import handle
from worker.orders.intake import Malformed, parse
from worker.orders.sequencer import AccountSequencer, Turn
from worker.ports import Delivery, Deps, Outcome

log = logging.getLogger(__name__)


class CommandConsumer:
    def __init__(self, deps: Deps, publisher: RabbitPublisher, names: Names) -> None:
        self.deps = deps
        self.publisher = publisher
        self.names = names
        self.sequencer = AccountSequencer()
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = False
        s = deps.settings
        self.fences = BrokerFences(s.prefetch, timeout_s=s.fence_s)
        self._channels: dict[int, object] = {}
        """Per shard, the AMQP channel its last message came on."""

    def _shard(self, message: AbstractIncomingMessage, account: str) -> int:
        shard = shard_of_key(message.routing_key or "")
        return shard if shard is not None else shard_for(account, self.names.shards)

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        """Handles one message; every path settles it before returning, so the time spent
        here is the time it stayed unacked (``ow_message_unacked_seconds_max``)."""
        delivered = time.monotonic()
        try:
            await self._on_message(message)
        finally:
            self.deps.metrics.on_settled(time.monotonic() - delivered)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        # Runs in arrival order up to the first await: the turn is taken here.
        via_tracking = message.exchange == self.names.tracking
        cmd = parse(message.body, tracking=via_tracking)
        if isinstance(cmd, TrackOrder | TrackBatch) and not via_tracking:
            cmd = Malformed(f"tracking record published to {message.exchange!r}",
                            {"command_id": cmd.command_id} if isinstance(cmd, TrackOrder)
                            else {})
        if isinstance(cmd, Malformed):
            if self.stopping:
                await _settle(message, Outcome("retry"))
            else:
                await self._guarded(message, self._reject_malformed(message, cmd))
            return
        if isinstance(cmd, TrackOrder | TrackBatch):
            if self.stopping:
                await _settle(message, Outcome("retry"))
            else:
                await self._guarded(message, self._record(message, cmd))
            return
        home = shard_for(cmd.account, self.names.shards)
        if self._shard(message, cmd.account) != home:
            # another worker may own the account's own shard: two turns, two creates
            misrouted = Malformed(
                f"account {cmd.account!r} belongs to shard {home} (crc32 of the canonical "
                f"account name % {self.names.shards}) but was published to shard "
                f"{message.routing_key}; publish through worker.client",
                {"command_id": cmd.command_id, "account": cmd.account,
                 "exchange": cmd.exchange, "symbol": getattr(cmd, "symbol", None) or "unknown"})
            await self._guarded(message, self._reject_malformed(message, misrouted))
            return
        turn = self.sequencer.enter(cmd.account)
        if self.stopping:
            # Draining: hand it back, but only once this account's earlier commands here
            # are submitted, so the worker taking over cannot overtake them.
            await self._guarded(message, self._return_after(turn, message), turn)
            return
        attempt = _delivery_count(message) + 1
        shard = self._shard(message, cmd.account)
        self._note_shard(shard, message)
        deferrals = _deferrals(message)
        # a deferred command is a redelivery: the worker that deferred it held it before
        delivery = Delivery(attempt=attempt, redelivered=bool(message.redelivered) or deferrals > 0,
                            turn=turn, shard=shard, fence=self.fences.for_message(message),
                            published_attempt=_published_attempt(message), deferrals=deferrals,
                            final_attempt=attempt > self.deps.settings.delivery_limit)
        await self._guarded(message, self._run(message, cmd, delivery), turn)

    def _note_shard(self, shard: int, message: AbstractIncomingMessage) -> None:
        """A message of ``shard`` arrived. On another channel than the last one (the
        channel or the connection was reopened), the shard may have been another worker's
        meanwhile: a new hold begins, and its facts are read again before any decision."""
        try:
            channel: object = message.channel
        except Exception:  # closed already: settling it will fail, nothing is decided
            channel = None
        if channel is not None and self._channels.get(shard) is not channel:
            if shard in self._channels:
                self.deps.tracker.warmth.restart(shard)
            self._channels[shard] = channel
        self.deps.tracker.warmth.seen(shard)

    async def _record(self, message: AbstractIncomingMessage,
                      rec: TrackOrder | TrackBatch) -> None:
        account = rec.account if isinstance(rec, TrackOrder) else ""
        shard = self._shard(message, account)
        self._note_shard(shard, message)
        await self.deps.tracker.on_record(rec, shard)
        await _settle(message, Outcome("ack"))

    async def _guarded(self, message: AbstractIncomingMessage, work: Any,
                       turn: Turn | None = None) -> None:
        task: asyncio.Task[None] = asyncio.current_task()  # type: ignore[assignment]
        self.tasks.add(task)
        try:
            await work
        except asyncio.CancelledError:
            await _settle(message, Outcome("retry"))
            raise
        except Exception:
            log.exception("message handling failed; leaving it for redelivery",
                          extra={"message_id": message.message_id})
            await _settle(message, Outcome("retry"))
        finally:
            if turn is not None:
                turn.release()
            self.tasks.discard(task)

    async def _return_after(self, turn: Turn, message: AbstractIncomingMessage) -> None:
        async with turn:
            await _settle(message, Outcome("retry"))

    async def _run(self, message: AbstractIncomingMessage, cmd: Any, delivery: Delivery) -> None:
        bind(command_id=cmd.command_id, account=cmd.account)
        outcome = await handle(cmd, self.deps, delivery)
        self.deps.crash.hit("before_ack")
        if outcome.action == "dead_letter":
            await self.publisher.dead_letter(message.body, outcome.reason,
                                             {"command_id": cmd.command_id})
        elif outcome.action == "defer":  # its copy is confirmed before the ack
            headers: dict[str, int] = {DEFER_HEADER: delivery.deferrals + 1}
            if delivery.published_attempt > 1:
                headers[REPUBLISH_HEADER] = delivery.published_attempt
            await self.publisher.defer(message.body, delivery.shard, headers,
                                       message.message_id)
        await _settle(message, outcome)

    async def _reject_malformed(self, message: AbstractIncomingMessage, bad: Malformed) -> None:
        ids, error = bad.ids, bad.error
        log.warning("malformed command: %s", error, extra={"command_id": ids.get("command_id")})
        if "command_id" in ids:
            account = ids.get("account", "unknown")
            ref = OrderRef(command_id=ids["command_id"], account=account,
                           exchange=ids.get("exchange", "unknown"),
                           symbol=ids.get("symbol", "unknown"),
                           client_order_id=client_order_id(account, ids["command_id"]))
            event = refusal(OrderRejected, ref, RejectReason.MALFORMED, error)
            await self.deps.publisher.publish([event])
        self.deps.metrics.outcomes.labels("malformed").inc()
        await self.publisher.dead_letter(message.body, f"malformed: {error}",
                                         {"command_id": ids.get("command_id", "")})
        await _settle(message, Outcome("ack"))


def _delivery_count(message: AbstractIncomingMessage) -> int:
    value = (message.headers or {}).get("x-delivery-count", 0)
    return value if isinstance(value, int) else 0


def _deferrals(message: AbstractIncomingMessage) -> int:
    value = (message.headers or {}).get(DEFER_HEADER, 0)
    return value if isinstance(value, int) and value >= 0 else 1


def _published_attempt(message: AbstractIncomingMessage) -> int:
    value = (message.headers or {}).get(REPUBLISH_HEADER, 1)
    return value if isinstance(value, int) else 2  # unreadable: assume a re-send


async def _settle(message: AbstractIncomingMessage, outcome: Outcome) -> None:
    try:
        if outcome.action == "retry":
            await message.nack(requeue=True)
        else:
            await message.ack()
    except Exception as exc:  # channel gone: the broker will redeliver, we reconcile then
        log.warning("could not settle message: %r", exc,
                    extra={"message_id": message.message_id})

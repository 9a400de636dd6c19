"""Strategy-side client: validate, publish with confirms, follow the command's events.

    async with OrderClient(amqp_url) as client:              # shard count: the workers'
        events = await client.submit(place_order, timeout_s=30)   # until its outcome
        async for event in client.events(command_id): ...    # ends after the outcome
        outcome = await client.cancel(place_order)           # CancelDone | CancelRejected
        outcome = await client.cancel_all("desk1", "paper")  # CancelAllDone | CancelRejected

The client declares nothing of the workers' topology (it needs configure permission
only on its own exclusive event queue ``<prefix>.client.<random>``): it reads the contract
the workers recorded (``worker.broker.contract``) and routes each command to
``crc32(account) % shards`` with a routing key naming the shard count, so a client with
a stale count gets a ``TopologyMismatchError``, never a misrouted command. Commands
are validated like the worker will before anything is published
(``InvalidCommandError``). Memory is bounded (``worker.client_log``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from typing import Self

import msgspec
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)
from aio_pika.exceptions import ChannelClosed, DeliveryError
from aiormq import spec

from schemas import CancelAll, CancelAllDone, CancelDone, CancelOrder, CancelRejected, Event
from schemas.commands import Command, PlaceOrder, decode_command, encode_command
from schemas.events import OUTCOME_EVENTS, TERMINAL_EVENTS, decode_event
from schemas.ids import canonical_account
from worker.broker.connect import connect_robust
from worker.broker.contract import Contract, mismatch, read_contract
from worker.broker.publisher import publish_bytes, send_with_reconnect
from worker.broker.topology import (
    REPUBLISH_HEADER,
    Names,
    command_key,
    event_routing_key,
    shard_for,
)
from worker.client_log import (
    InvalidCommandError,
    NoWorkerError,
    OrderClientError,
    OrderLog,
    OutcomeTimeoutError,
    TopologyMismatchError,
)
from worker.errors import CommandError
from worker.messages import explain_json
from worker.orders.validation import validate_place

SENT_IDS_KEPT = 100_000
"""Command ids whose sends this client counts (the oldest forgotten first)."""

__all__ = ["InvalidCommandError", "NoWorkerError", "OrderClient", "OrderClientError",
           "OutcomeTimeoutError", "TopologyMismatchError", "validate_command"]


def validate_command(command: Command) -> bytes:
    """The command's body, checked like the worker's intake; InvalidCommandError."""
    body = encode_command(command)
    try:
        decoded = decode_command(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidCommandError(explain_json(exc, Command, body)) from None
    if isinstance(decoded, PlaceOrder):
        try:
            validate_place(decoded)
        except CommandError as exc:
            raise InvalidCommandError(str(exc)) from None
    return body


class OrderClient:
    def __init__(self, amqp_url: str, *, prefix: str = "orderworker", shards: int | None = None,
                 watch: str = "order.#", keep_finished: int = 1_000,
                 max_open: int = 100_000) -> None:
        """``shards``: None follows the workers' contract; a number is checked against it.
        ``watch``: routing-key pattern of the events to follow (empty: none)."""
        self.amqp_url = amqp_url
        self.prefix = prefix
        self.shards = shards
        self.watch = _canonical_watch(watch)
        self.log = OrderLog(max_open=max_open, keep_finished=keep_finished)
        self.listeners: list[asyncio.Queue[Event]] = []
        self.republish_s = 60.0
        self.contract: Contract | None = None
        self._conn: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._commands: AbstractExchange | None = None
        self._attach_lock = asyncio.Lock()
        self._sent: OrderedDict[str, str] = OrderedDict()  # command id -> account (hints)
        self._sends: OrderedDict[str, int] = OrderedDict()
        """command id -> how often this client sent it (re-sends carry REPUBLISH_HEADER)."""

    @property
    def names(self) -> Names:
        shards = self.contract.shards if self.contract else self.shards
        return Names(self.prefix, shards or 0)

    @property
    def duplicates(self) -> int:
        return self.log.duplicates

    async def __aenter__(self) -> Self:
        self._conn = await connect_robust(self.amqp_url, reconnect_interval=1.0)
        self._channel = await self._conn.channel(publisher_confirms=True, on_return_raises=True)
        try:
            await self._attach()
        except NoWorkerError:
            pass  # no worker yet: wait_for_workers() or the first send attaches
        except BaseException:
            await self._conn.close()  # __aexit__ will not run
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._conn is not None:
            await self._conn.close()

    async def _exists(self, kind: str, name: str) -> bool:
        assert self._conn is not None, "use 'async with OrderClient(...)'"
        channel = await self._conn.channel()
        try:
            if kind == "exchange":
                await channel.declare_exchange(name, passive=True)
            else:
                await channel.declare_queue(name, passive=True)
            return True
        except ChannelClosed:
            return False
        finally:
            if not channel.is_closed:
                await channel.close()

    async def _attach(self) -> None:
        """Read the contract, check the shard count, bind the event queue (once)."""
        async with self._attach_lock:
            if self._commands is not None:
                return
            assert self._conn is not None and self._channel is not None, \
                "use 'async with OrderClient(...)'"
            contract = await read_contract(self._conn, Names(self.prefix, 0), wait_s=2.0)
            if contract is None or not await self._exists("exchange", f"{self.prefix}.events"):
                raise NoWorkerError(
                    f"no worker has set up prefix {self.prefix!r} on this broker: start one "
                    f"(orderworker run) with OW_PREFIX={self.prefix}, or check the prefix")
            self._check(contract)
            if self.watch:
                events = await self._channel.get_exchange(f"{self.prefix}.events")
                queue = await self._channel.declare_queue(
                    f"{self.prefix}.client.{uuid.uuid4().hex[:16]}", exclusive=True,
                    auto_delete=True)
                await queue.bind(events, self.watch)
                await queue.consume(self._on_event, no_ack=True)
            self._commands = await self._channel.get_exchange(f"{self.prefix}.commands")

    def _check(self, contract: Contract) -> None:
        why = mismatch(contract, self.shards if self.shards else contract.shards, "this client")
        if why:
            raise TopologyMismatchError(why)
        self.contract = contract

    async def _on_event(self, message: AbstractIncomingMessage) -> None:
        event = decode_event(message.body)
        if self.log.add(event):
            for q in self.listeners:
                q.put_nowait(event)

    def history(self, command_id: str) -> list[Event]:
        """The events seen so far for ``command_id`` (open or recently finished)."""
        return self.log.history(command_id)

    async def wait_for_topology(self, timeout_s: float = 10.0) -> None:
        """Return once a worker has set up the prefix (the contract is readable);
        NoWorkerError after ``timeout_s``. Cheaper than ``wait_for_workers``."""
        end = asyncio.get_running_loop().time() + timeout_s
        while True:
            try:
                return await self._attach()
            except NoWorkerError:
                if asyncio.get_running_loop().time() > end:
                    raise
            await asyncio.sleep(0.3)

    async def wait_for_workers(self, timeout_s: float = 30.0) -> None:
        """Return once the workers recorded the topology and every shard queue has a
        consumer; NoWorkerError naming the first shard without one."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while True:
            try:
                await self._attach()
                missing = await self._unconsumed_shard()
            except NoWorkerError as exc:
                missing, error = -1, exc
            if missing is None:
                return
            if loop.time() > end:
                if missing >= 0:
                    raise NoWorkerError(f"after {timeout_s:g} s: {self._no_consumer(missing)}")
                raise error
            await asyncio.sleep(0.2)

    async def _unconsumed_shard(self, shards: list[int] | None = None) -> int | None:
        """The first of ``shards`` (default: all) whose queue has no consumer."""
        assert self._conn is not None
        for shard in range(self.names.shards) if shards is None else shards:
            channel = await self._conn.channel()
            try:
                q = await channel.declare_queue(self.names.shard_queue(shard), passive=True)
                if not q.declaration_result.consumer_count:
                    return shard
            except ChannelClosed:
                return shard
            finally:
                if not channel.is_closed:
                    await channel.close()
        return None

    def _no_consumer(self, shard: int) -> str:
        return (f"no worker is consuming shard {shard} of prefix {self.prefix!r} "
                f"({self.names.shard_queue(shard)}): start a worker with "
                f"OW_PREFIX={self.prefix} and OW_SHARDS={self.names.shards}")

    async def send(self, command: Command) -> None:
        """Validate and publish (broker-confirmed); InvalidCommandError, NoWorkerError,
        TopologyMismatchError."""
        body = validate_command(command)
        await self.publish_raw(body, command.account, message_id=command.command_id)
        self._sent[command.command_id] = command.account
        while len(self._sent) > self.log.keep_finished + 10_000:
            self._sent.popitem(last=False)

    async def publish_raw(self, body: bytes, account: str, message_id: str | None = None) -> None:
        """Publish bytes to the account's shard queue, awaiting the broker's confirm."""
        await self._attach()
        assert self._commands is not None
        exchange = self._commands
        sends = self._sends.pop(message_id, 0) if message_id else 0
        for attempt in (1, 2):
            shards = self.names.shards
            key = command_key(shard_for(canonical_account(account), shards), shards)

            def publish(key: str = key) -> Awaitable[object]:
                # every send of this command id after its first (a re-send after an
                # unconfirmed publish, or the application sending it again) is marked:
                # an earlier copy may be queued or done, so the worker looks it up first
                nonlocal sends
                sends += 1
                if message_id:
                    self._sends[message_id] = sends
                    if len(self._sends) > SENT_IDS_KEPT:
                        self._sends.popitem(last=False)
                properties = spec.Basic.Properties(
                    delivery_mode=2, content_type="application/json", message_id=message_id,
                    headers={REPUBLISH_HEADER: sends} if sends > 1 else None)
                return publish_bytes(exchange, body, key, properties, 30)

            try:
                await send_with_reconnect("command", publish, self.republish_s, exchange)
                return
            except DeliveryError as exc:  # unroutable: did the workers change the count?
                assert self._conn is not None
                now = await read_contract(self._conn, self.names, wait_s=2.0)
                if (now is not None and now.state == "ready" and now.shards != shards
                        and self.shards is None and attempt == 1):
                    self.contract = now  # following the workers: route with the new count
                    continue
                if now is not None and (why := mismatch(now, shards, "this client")):
                    raise TopologyMismatchError(why) from exc
                raise NoWorkerError(
                    f"no queue is bound for shard {key} of prefix {self.prefix!r}: no worker "
                    f"with OW_PREFIX={self.prefix} and OW_SHARDS={shards} declared it") from exc

    async def _wait(self, command_id: str, outcome: bool, timeout_s: float) -> Event:
        kinds = OUTCOME_EVENTS if outcome else TERMINAL_EVENTS
        try:
            return await self.log.wait(command_id, lambda e: isinstance(e, kinds), timeout_s)
        except TimeoutError:
            raise OutcomeTimeoutError(await self._timeout_text(command_id, timeout_s)) from None

    async def _timeout_text(self, command_id: str, timeout_s: float) -> str:
        text = f"no outcome for command {command_id!r} within {timeout_s:g} s"
        seen = self.history(command_id)
        if seen:
            return f"{text} (last event: {type(seen[-1]).__name__})"
        account = self._sent.get(command_id)
        own = ([shard_for(canonical_account(account), self.names.shards)]
               if account is not None else None)
        try:
            shard = await self._unconsumed_shard(own)
        except Exception:  # the hint is a courtesy
            shard = None
        if shard is not None:
            return f"{text}: {self._no_consumer(shard)}"
        return f"{text}: a worker consumes its shard, so check the workers' logs"

    async def wait_first(self, command_id: str, timeout_s: float = 60.0) -> Event:
        """The first event of a command (usually OrderAccepted)."""
        try:
            return await self.log.wait(command_id, lambda e: True, timeout_s)
        except TimeoutError:
            raise OutcomeTimeoutError(await self._timeout_text(command_id, timeout_s)) from None

    async def wait_terminal(self, command_id: str, timeout_s: float = 60.0) -> Event:
        """The event that ends the order placed by ``command_id``."""
        return await self._wait(command_id, False, timeout_s)

    async def wait_outcome(self, command_id: str, timeout_s: float = 60.0) -> Event:
        """The outcome of any command: its order's terminal event for a PlaceOrder,
        ``cancel_done`` / ``cancel_rejected`` / ``cancel_all_done`` for cancels."""
        return await self._wait(command_id, True, timeout_s)

    async def submit(self, command: Command, timeout_s: float = 60.0) -> list[Event]:
        """Send and wait for the command's outcome; returns its events so far."""
        await self.send(command)
        await self.wait_outcome(command.command_id, timeout_s)
        return self.history(command.command_id)

    async def events(self, command_id: str, idle_timeout_s: float | None = None
                     ) -> AsyncIterator[Event]:
        """Every event of ``command_id``, past and coming, ending after its outcome.
        ``idle_timeout_s``: OutcomeTimeoutError when no event comes for that long."""
        stream = self.log.open_stream(command_id)
        try:
            yielded: set[str] = set()
            for event in self.history(command_id):
                yielded.add(event.event_id)
                yield event
                if isinstance(event, OUTCOME_EVENTS):
                    return
            while True:
                try:
                    event = await asyncio.wait_for(stream.get(), idle_timeout_s)
                except TimeoutError:
                    raise OutcomeTimeoutError(
                        await self._timeout_text(command_id, idle_timeout_s or 0)) from None
                if event.event_id in yielded:
                    continue
                yielded.add(event.event_id)
                yield event
                if isinstance(event, OUTCOME_EVENTS):
                    return
        finally:
            self.log.close_stream(command_id, stream)

    async def cancel(self, target: PlaceOrder | str, *, account: str | None = None,
                     exchange: str | None = None, symbol: str | None = None,
                     command_id: str | None = None, timeout_s: float = 60.0
                     ) -> CancelDone | CancelRejected:
        """Cancel the order placed by ``target`` (a PlaceOrder, or its command id with
        ``account`` and ``exchange``); returns the cancel's outcome."""
        if isinstance(target, PlaceOrder):
            account, exchange = target.account, target.exchange
            symbol, target_id = symbol or target.symbol, target.command_id
        else:
            target_id = target
        if account is None or exchange is None:
            raise InvalidCommandError("cancel by command id needs account= and exchange=")
        outcome = await self._outcome(CancelOrder(
            command_id=command_id or _new_id("cancel"), account=account, exchange=exchange,
            target_command_id=target_id, symbol=symbol, created_at=datetime.now(UTC)),
            timeout_s)
        assert isinstance(outcome, CancelDone | CancelRejected), outcome
        return outcome

    async def cancel_all(self, account: str, exchange: str, symbol: str | None = None, *,
                         command_id: str | None = None, timeout_s: float = 60.0
                         ) -> CancelAllDone | CancelRejected:
        """Cancel every open order of ``account`` on ``exchange`` (optionally one symbol)."""
        outcome = await self._outcome(CancelAll(
            command_id=command_id or _new_id("cancel-all"), account=account, exchange=exchange,
            symbol=symbol, created_at=datetime.now(UTC)), timeout_s)
        assert isinstance(outcome, CancelAllDone | CancelRejected), outcome
        return outcome

    async def _outcome(self, command: Command, timeout_s: float) -> Event:
        await self.send(command)
        return await self.wait_outcome(command.command_id, timeout_s)


def _canonical_watch(pattern: str) -> str:
    """``order.<account>.…``: events carry the canonical account (``Desk-1`` -> ``desk_1``),
    so a pattern naming an account is rewritten to match them."""
    parts = pattern.split(".")
    if len(parts) > 1 and parts[0] == "order" and parts[1] not in ("*", "#"):
        parts[1] = event_routing_key(canonical_account(parts[1]), "", "").split(".")[1]
    return ".".join(parts)


def _new_id(what: str) -> str:
    return f"{what}-{uuid.uuid4().hex[:20]}"

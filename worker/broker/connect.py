"""Connections to one broker or to any node of a cluster.

``AMQP_URL`` holds one address or several, comma-separated (the nodes of a cluster)::

    amqp://u:p@rabbit-0:5672/,amqp://u:p@rabbit-1:5672/,amqp://u:p@rabbit-2:5672/

``connect_robust`` is aio-pika's robust connection with one change: every (re)connect
attempt goes to the *next* address of the list, round the ring, so when the node a
component is connected to dies, the next attempt (``reconnect_interval`` later at most)
goes to another node. Everything else stays aio-pika's: channels, QoS, queues declared
through a robust channel and their consumers are restored on the new connection, and
publishers ride the gap out with ``worker.broker.publisher.send_with_reconnect``.

The first connect tries each address once, in order, and raises the last error if none
answers. With a single address this is exactly ``aio_pika.connect_robust``. A worker
starts at the address ``OW_WORKER_INDEX`` points to (index modulo the count), so the
workers of one deployment spread over the nodes: a node loss then takes the connections
of only some workers, and the others' standby consumers take its shards over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Sequence
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, DeliveryError
from yarl import URL

log = logging.getLogger(__name__)


def broker_urls(value: str | Sequence[str]) -> list[str]:
    """Split ``AMQP_URL`` on commas and check each entry is an ``amqp(s)://`` address."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    urls = [u.strip() for u in parts if u.strip()]
    if not urls:
        raise ValueError("AMQP_URL is empty: give amqp://user:password@host:port/vhost, "
                         "or several such addresses separated by commas")
    for url in urls:
        parsed = URL(url)
        if parsed.scheme not in ("amqp", "amqps") or not parsed.host:
            shown = parsed.with_password("***") if parsed.password else parsed
            raise ValueError(f"AMQP_URL entry {str(shown)!r} is not an amqp:// or amqps:// "
                             "address (separate several addresses with commas)")
    return urls


def redact(url: str) -> str:
    parsed = URL(url)
    return str(parsed.with_password("***")) if parsed.password else url


class AddressRing:
    """The broker addresses, and the one the next connect attempt uses."""

    def __init__(self, urls: Sequence[str], start: int = 0) -> None:
        if not urls:
            raise ValueError("no broker address")
        self.urls = list(urls)
        self.position = start % len(self.urls)

    @property
    def current(self) -> str:
        return self.urls[self.position]

    def advance(self) -> str:
        self.position = (self.position + 1) % len(self.urls)
        return self.current


class RotatingRobustConnection(aio_pika.RobustConnection):
    """A robust connection that moves to the next address of its ring whenever its
    connection closes or a connect attempt fails (aio-pika reports both through
    ``_on_connection_close`` before its reconnect loop tries again)."""

    def __init__(self, ring: AddressRing, **kwargs: Any) -> None:
        super().__init__(URL(ring.current), **kwargs)
        self.ring = ring
        # aio-pika keeps its channels in a WeakSet: a channel nobody else references is
        # garbage-collected once its connection drops, and its consumers are never restored
        self._held: set[AbstractChannel] = set()
        self.consumers_rearmed = 0
        self.reconnect_callbacks.add(self._check_consumers)

    def channel(self, channel_number: int | None = None, publisher_confirms: bool = True,
                on_return_raises: bool = False) -> AbstractRobustChannel:
        """aio-pika's robust channel, held until it is closed on purpose."""
        channel = super().channel(channel_number=channel_number,
                                  publisher_confirms=publisher_confirms,
                                  on_return_raises=on_return_raises)
        self._held = {c for c in self._held if not _closed_on_purpose(c)}
        self._held.add(channel)
        return channel

    def _check_consumers(self, *_: Any) -> None:
        """After a reconnect: each consumer of a held channel is back on its new AMQP
        channel; if one is not, ask aio-pika's recovery loop to consume it again (it
        skips the tags already there, so no consumer is doubled)."""
        missing = sum(len(_missing_consumers(c)) for c in self._held
                      if not _closed_on_purpose(c))
        if missing:
            self.consumers_rearmed += missing
            log.warning("%d consumer(s) not restored after a reconnect; consuming again",
                        missing)
            self._request_recovery()

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        if len(self.ring.urls) > 1 and not self._close_called:
            self.url = URL(self.ring.advance())
            log.warning("broker connection lost or refused; next attempt: %s",
                        redact(self.ring.current))
        await super()._on_connection_close(closing)


def _closed_on_purpose(channel: AbstractChannel) -> bool:
    return bool(getattr(channel, "_close_called", False))


def _missing_consumers(channel: AbstractChannel) -> set[str]:
    """Consumer tags a robust channel restores that its current AMQP channel lacks."""
    queues: dict[str, set[Any]] = getattr(channel, "_queues", {})
    underlay = getattr(channel, "_channel", None)
    present = set(underlay.channel.consumers) if underlay is not None else set()
    wanted: set[str] = set()
    for group in tuple(queues.values()):
        for queue in tuple(group):
            wanted.update(getattr(queue, "_consumers", {}))
    return wanted - present


async def connect_robust(amqp_url: str | Sequence[str], *, reconnect_interval: float = 1.0,
                         client_properties: dict[str, Any] | None = None,
                         connect_timeout_s: float | None = None,
                         first: int = 0) -> AbstractRobustConnection:
    """A robust connection to the first answering address, trying them from index
    ``first`` (modulo their count) round the ring; reconnects rotate the list."""
    urls = broker_urls(amqp_url)
    last: BaseException | None = None
    for start in ((first + k) % len(urls) for k in range(len(urls))):
        conn = RotatingRobustConnection(
            AddressRing(urls, start), reconnect_interval=reconnect_interval,
            **({"client_properties": client_properties} if client_properties else {}))
        try:
            await conn.connect(timeout=connect_timeout_s)
            return conn
        except CONNECTION_EXCEPTIONS as exc:
            last = exc
            log.warning("broker %s unreachable: %r", redact(urls[start]), exc)
            with contextlib.suppress(*CONNECTION_EXCEPTIONS):
                await conn.close()
    assert last is not None
    raise last


async def underlay_of(exchange: AbstractExchange) -> object | None:
    """The AMQP channel currently under ``exchange``'s channel (None if there is none)."""
    if not isinstance(exchange, aio_pika.Exchange):
        return None
    channel = exchange.channel
    if not isinstance(channel, aio_pika.Channel):
        return None
    try:  # the plain Channel's accessor: the robust one would wait for a reconnect
        return await aio_pika.Channel.get_underlay_channel(channel)
    except CONNECTION_EXCEPTIONS:
        return None


def needs_renewal(exchange: AbstractExchange, exc: BaseException) -> bool:
    """A nack (see ``renew_channel``), or a channel left closed by a failed renewal."""
    if isinstance(exc, DeliveryError):
        return True
    return isinstance(exchange, aio_pika.Exchange) and exchange.channel.is_closed


_renewing: weakref.WeakKeyDictionary[object, asyncio.Lock] = weakref.WeakKeyDictionary()


async def renew_channel(exchange: AbstractExchange, seen: object | None) -> None:
    """Open a fresh AMQP channel under ``exchange``'s robust channel (aio-pika re-declares
    its exchanges and queues and restores its consumers), unless another publisher did so
    since ``seen`` (``underlay_of`` before the publish) or the channel still works.

    Needed after a broker nack: RabbitMQ 3.10 remembers, per channel, the quorum-queue
    leader known at the channel's first publish to the queue; if that node died, every
    later publish on the channel is nacked until the node returns, while a fresh channel
    publishes fine (seen in ``make chaos-cluster``). Also called when an earlier renewal
    left the channel closed."""
    if not isinstance(exchange, aio_pika.Exchange):
        return
    channel = exchange.channel
    async with _renewing.setdefault(channel, asyncio.Lock()):
        if not channel.is_closed and await underlay_of(exchange) is not seen:
            return  # renewed (or restored) meanwhile
        log.warning("broker nacked a publish or the channel is closed; opening a fresh one")
        try:
            if not channel.is_closed:
                await channel.close()
            await channel.reopen()
        except Exception as exc:  # best effort: the next failed publish tries again
            log.warning("could not reopen the channel (%r)", exc)


async def connect(amqp_url: str | Sequence[str], *,
                  connect_timeout_s: float | None = None) -> AbstractConnection:
    """A plain (non-robust) connection to the first address that answers (tools)."""
    urls = broker_urls(amqp_url)
    for url in urls[:-1]:
        try:
            return await aio_pika.connect(url, timeout=connect_timeout_s)
        except CONNECTION_EXCEPTIONS as exc:
            log.warning("broker %s unreachable: %r", redact(url), exc)
    return await aio_pika.connect(urls[-1], timeout=connect_timeout_s)

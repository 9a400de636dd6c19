"""Address rotation of worker.broker.connect, with a fake transport connect function
under aio-pika's real robust reconnect loop."""

from __future__ import annotations

import asyncio
from typing import Any

import aiormq
import pytest
from aio_pika.abc import AbstractRobustConnection

from worker.broker.connect import AddressRing, broker_urls, connect_robust

A, B, C = (f"amqp://guest:guest@127.0.0.1:{p}/" for p in (5781, 5782, 5783))


class FakeTransport:
    """Just enough of an aiormq connection for aio-pika's UnderlayConnection."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.closing: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.is_closed = False

    async def ready(self) -> None:
        return None

    def lose(self) -> None:
        self.is_closed = True
        self.closing.set_exception(ConnectionResetError("node died"))

    async def close(self, exc: object = None) -> None:
        self.is_closed = True
        if not self.closing.done():
            self.closing.set_result(None)


class FakeBrokers:
    def __init__(self, up: set[str]) -> None:
        self.up = up
        self.attempts: list[str] = []
        self.live: list[FakeTransport] = []

    async def connect(self, url: object, **_: object) -> FakeTransport:
        address = str(url).split("?")[0]
        self.attempts.append(address)
        if address not in self.up:
            raise ConnectionRefusedError(address)
        transport = FakeTransport(address)
        self.live.append(transport)
        return transport


@pytest.fixture
def brokers(monkeypatch: pytest.MonkeyPatch) -> FakeBrokers:
    fake = FakeBrokers({A, B, C})
    monkeypatch.setattr(aiormq, "connect", fake.connect)
    return fake


def test_urls_split_on_commas_and_one_url_stays_one() -> None:
    assert broker_urls(A) == [A]
    assert broker_urls(f" {A}, {B},{C} ,") == [A, B, C]


@pytest.mark.parametrize("bad", ["", " , ", "http://h/", "127.0.0.1:5672",
                                 "amqp://u:secret@/"])
def test_bad_urls_are_refused_naming_the_setting(bad: str) -> None:
    with pytest.raises(ValueError, match="AMQP_URL") as info:
        broker_urls(bad)
    assert "secret" not in str(info.value)


def test_ring_wraps_around() -> None:
    ring = AddressRing([A, B, C], start=1)
    assert [ring.current, ring.advance(), ring.advance(), ring.advance()] == [B, C, A, B]


async def test_first_connect_skips_dead_addresses(brokers: FakeBrokers) -> None:
    brokers.up = {C}
    conn = await connect_robust([A, B, C], reconnect_interval=0.01)
    assert brokers.attempts == [A, B, C]
    assert str(conn.url).startswith(C.rstrip("/"))
    await conn.close()


async def test_workers_start_at_their_own_address(brokers: FakeBrokers) -> None:
    brokers.up = {A, B}
    conn = await connect_robust([A, B, C], reconnect_interval=0.01, first=4)  # 4 % 3 = 1
    assert brokers.attempts == [B]
    await conn.close()
    brokers.attempts.clear()
    conn = await connect_robust([A, B, C], reconnect_interval=0.01, first=2)  # C is down
    assert brokers.attempts == [C, A]
    assert str(conn.url).startswith(A.rstrip("/"))
    await conn.close()


async def test_first_connect_raises_when_no_address_answers(brokers: FakeBrokers) -> None:
    brokers.up = set()
    with pytest.raises(ConnectionRefusedError):
        await connect_robust(f"{A},{B}", reconnect_interval=0.01)
    assert brokers.attempts == [A, B]


def reconnects(conn: AbstractRobustConnection) -> asyncio.Queue[None]:
    done: asyncio.Queue[None] = asyncio.Queue()
    conn.reconnect_callbacks.add(lambda *_: done.put_nowait(None))
    return done


async def test_reconnects_rotate_to_the_next_address(brokers: FakeBrokers) -> None:
    conn = await connect_robust(f"{A},{B},{C}", reconnect_interval=0.01)
    assert brokers.attempts == [A]
    reconnected = reconnects(conn)
    brokers.up = {A, C}  # B is down: the attempt after A's loss fails, the next reaches C
    brokers.live[-1].lose()
    await asyncio.wait_for(reconnected.get(), 2)
    assert brokers.attempts == [A, B, C]
    brokers.up = {A, B, C}
    brokers.live[-1].lose()  # from C the ring wraps to A
    await asyncio.wait_for(reconnected.get(), 2)
    assert brokers.attempts == [A, B, C, A]
    await conn.close()
    assert len(brokers.attempts) == 4  # closing on purpose does not reconnect


async def test_single_address_reconnects_to_itself(brokers: FakeBrokers) -> None:
    conn = await connect_robust(A, reconnect_interval=0.01)
    reconnected = reconnects(conn)
    brokers.live[-1].lose()
    await asyncio.wait_for(reconnected.get(), 2)
    assert brokers.attempts == [A, A]
    await conn.close()


async def test_a_broker_nack_is_re_sent_a_returned_message_is_not() -> None:
    from aio_pika.exceptions import DeliveryError, PublishError
    from pamqp.commands import Basic

    from worker.broker.publisher import send_with_reconnect

    calls: list[int] = []

    async def nacked_once() -> None:
        calls.append(1)
        if len(calls) == 1:  # a quorum queue between leaders nacks
            raise DeliveryError(None, Basic.Nack(delivery_tag=1))

    await send_with_reconnect("events", nacked_once, limit_s=5)
    assert len(calls) == 2

    async def returned() -> None:
        calls.append(1)
        raise PublishError.__new__(PublishError)

    with pytest.raises(PublishError):
        await send_with_reconnect("events", returned, limit_s=5)
    assert len(calls) == 3


class _Starting:
    """A Worker whose start() loses its connection ``drops`` times after connecting."""

    def __init__(self, drops: int, error: Exception) -> None:
        from worker.app import Worker
        from worker.settings import Settings

        self.worker = Worker(Settings())
        self.drops, self.error, self.starts = drops, error, 0

        async def start() -> None:
            self.starts += 1
            self.worker.connection = object()  # type: ignore[assignment]
            if self.starts <= self.drops:
                raise self.error

        async def abandon() -> None:
            self.worker.connection = None

        self.worker.start = start  # type: ignore[method-assign]
        self.worker._abandon_start = abandon  # type: ignore[method-assign]


async def test_a_node_lost_while_starting_starts_the_worker_over(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asyncio, "sleep", _no_sleep)
    s = _Starting(2, aiormq.exceptions.ConnectionClosed(320, "reset"))
    await s.worker.start_riding_out()
    assert s.starts == 3


async def test_a_refusal_while_starting_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asyncio, "sleep", _no_sleep)
    s = _Starting(1, aiormq.exceptions.ChannelPreconditionFailed("x-quorum-initial-group-size"))
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
        await s.worker.start_riding_out()
    assert s.starts == 1


async def _no_sleep(_: float) -> None:
    return None

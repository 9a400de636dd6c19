"""Read back the dead-letter queue (operators, the demo, the chaos report).

``peek_dead_letters`` looks without removing (the messages are fetched unacked
and go back to the queue when the channel closes); ``replay_dead_letter``
re-publishes one command to the commands exchange with a publisher confirm,
then removes it from the dead-letter queue; ``drain_dead_letters`` empties it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aio_pika
import msgspec
from aio_pika.abc import AbstractIncomingMessage

from schemas.commands import decode_command
from schemas.ids import canonical_account
from worker.broker.connect import connect
from worker.broker.contract import mismatch, read_contract
from worker.broker.topology import Names, command_key, shard_for


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """One dead letter as an operator sees it."""

    position: int
    message_id: str | None
    command_id: str | None
    """From the body when it is JSON with a command_id (the worker's copies get new ids)."""
    reason: str
    deaths: list[dict[str, Any]]
    body: bytes


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def reason_of(headers: dict[str, Any]) -> str:
    """The worker's ``x-orderworker-reason``, else the broker's (e.g. ``delivery_limit``)."""
    reason = headers.get("x-orderworker-reason") or headers.get("x-first-death-reason")
    return str(_text(reason)) if reason is not None else "unknown"


def _deaths(headers: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for death in headers.get("x-death") or []:
        if isinstance(death, dict):
            out.append({k: (v.isoformat() if isinstance(v, datetime) else _text(v))
                        for k, v in death.items()
                        if k in ("queue", "reason", "count", "exchange", "time")})
    return out


def _command_id(body: bytes) -> str | None:
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    cid = value.get("command_id") if isinstance(value, dict) else None
    return cid if isinstance(cid, str) else None


def _letter(position: int, msg: AbstractIncomingMessage) -> DeadLetter:
    headers = dict(msg.headers or {})
    return DeadLetter(position=position, message_id=msg.message_id,
                      command_id=_command_id(msg.body), reason=reason_of(headers),
                      deaths=_deaths(headers), body=msg.body)


async def peek_dead_letters(amqp_url: str, names: Names, limit: int = 100) -> list[DeadLetter]:
    """Up to ``limit`` dead letters, oldest first, left in the queue."""
    out: list[DeadLetter] = []
    async with await connect(amqp_url) as conn:
        channel = await conn.channel()
        queue = await channel.declare_queue(names.dead_queue, passive=True)
        while len(out) < limit and (msg := await queue.get(fail=False)) is not None:
            out.append(_letter(len(out), msg))
    return out  # closing the channel returns every unacked message to the queue


class ReplayError(LookupError):
    """The chosen dead letter is missing or is not a command."""


async def replay_dead_letter(amqp_url: str, names: Names, message_id: str,
                             scan_limit: int = 10_000) -> DeadLetter:
    """Re-publish the dead command whose message id or command id is ``message_id`` to
    its shard (confirmed), then remove it. The shard count is the workers' contract's;
    ``names.shards`` (when not 0) must agree with it."""
    async with await connect(amqp_url) as conn:
        contract = await read_contract(conn, names)
        if contract is None:
            raise ReplayError(f"no worker has recorded the topology of prefix {names.prefix!r}")
        if why := mismatch(contract, names.shards or contract.shards,
                           "--shards"):
            raise ReplayError(why)
        names = Names(names.prefix, contract.shards)
        channel = await conn.channel(publisher_confirms=True, on_return_raises=True)
        queue = await channel.declare_queue(names.dead_queue, passive=True)
        for position in range(scan_limit):
            msg = await queue.get(fail=False)
            if msg is None:
                break
            letter = _letter(position, msg)
            if message_id not in (letter.message_id, letter.command_id):
                continue
            try:
                command = decode_command(msg.body)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise ReplayError(f"dead letter {message_id!r} is not a valid command and "
                                  f"cannot be replayed: {exc}") from None
            commands = await channel.get_exchange(names.commands, ensure=False)
            await commands.publish(
                aio_pika.Message(msg.body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                 content_type="application/json",
                                 message_id=command.command_id,
                                 headers={"x-orderworker-replayed-reason": letter.reason}),
                command_key(shard_for(canonical_account(command.account), names.shards),
                            names.shards),
                mandatory=True, timeout=30)
            await msg.ack()
            return letter
    raise ReplayError(f"no dead letter with message or command id {message_id!r} in "
                      f"{names.dead_queue}")


async def drain_dead_letters(amqp_url: str, names: Names) -> list[tuple[bytes, str]]:
    """Remove every dead letter; return (body, reason) pairs."""
    out = []
    async with await connect(amqp_url) as conn:
        channel = await conn.channel()
        queue = await channel.declare_queue(names.dead_queue, passive=True)
        while (msg := await queue.get(fail=False)) is not None:
            out.append((msg.body, reason_of(dict(msg.headers or {}))))
            await msg.ack()
    return out

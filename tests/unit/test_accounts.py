"""Issue 10, item 10: one canonical account identity everywhere.

``desk-1``, ``desk_1`` and ``Desk-1`` share one API key (credential lookup folds case
and -/_). Before, they got three shards, turns and client order ids: one command_id
sent under the three aliases placed three orders on one exchange account."""

from __future__ import annotations

import zlib

from schemas import canonical_account, client_order_id
from schemas.commands import encode_command
from tests.conftest import place
from tests.unit.test_consumer import NAMES, DeadLetters, FakeMessage
from tests.unit.test_handlers import make
from worker.broker.consumer import CommandConsumer
from worker.broker.topology import shard_for
from worker.exchange.credentials import load_credentials

ALIASES = ("desk-1", "desk_1", "Desk-1")


def test_aliases_share_one_identity_and_one_key() -> None:
    assert {canonical_account(a) for a in ALIASES} == {"desk_1"}
    assert len({client_order_id(a, "c-1") for a in ALIASES}) == 1
    assert len({shard_for(a, 16) for a in ALIASES}) == 1
    env = {"OW_CRED_DESK_1_BINANCE_API_KEY": "k" * 8, "OW_CRED_DESK_1_BINANCE_SECRET": "s" * 8}
    assert load_credentials("desk_1", "binance", env=env) is not None


async def test_one_command_id_under_three_aliases_places_one_order() -> None:
    deps, pub, paper = make()
    consumer = CommandConsumer(deps, DeadLetters(), NAMES)  # type: ignore[arg-type]
    log: list[str] = []
    first = place(account="desk-1")
    for i, alias in enumerate(ALIASES):
        cmd = place(account=alias, command_id=first.command_id)
        await consumer.on_message(FakeMessage(  # type: ignore[arg-type]
            encode_command(cmd), log, f"m{i}", routing_key=str(shard_for(alias, 4))))
    cid = client_order_id("desk_1", first.command_id)
    assert paper.orders_for(cid) == 1 and paper.created == 1
    assert {e.account for e in pub.events} == {"desk_1"}
    assert {e.client_order_id for e in pub.events} == {cid}
    assert log == ["ack m0", "ack m1", "ack m2"]
    await deps.tracker.close()


async def test_command_published_to_a_non_canonical_shard_is_refused() -> None:
    """A producer hashing the raw alias would hand the account to two shards (two
    workers, two turns): such a command is refused, naming the right shard."""
    alias = next(a for a in (f"Desk-{i}" for i in range(100))
                 if zlib.crc32(a.encode()) % 4 != shard_for(a, 4))
    deps, pub, paper = make()
    dead = DeadLetters()
    consumer = CommandConsumer(deps, dead, NAMES)  # type: ignore[arg-type]
    log: list[str] = []
    await consumer.on_message(FakeMessage(  # type: ignore[arg-type]
        encode_command(place(account=alias)), log, "m",
        routing_key=str(zlib.crc32(alias.encode()) % 4)))
    assert paper.created == 0 and log == ["ack m"]
    assert pub.kinds() == ["OrderRejected"] and "belongs to shard" in dead.items[0][1]

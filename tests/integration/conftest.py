"""Fixtures shared by the integration tests."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from tests.exchange.conftest import KEY, SECRET
from tests.integration.harness import Harness, harness
from worker.lab.chaos import heal_dead_letter_supervisor
from worker.lab.sim.binance import BinanceSim


def local_node(url: str) -> bool:
    """The broker at ``url`` is one local node this machine's rabbitmqctl can restart."""
    return shutil.which("rabbitmqctl") is not None and "," not in url and (
        "127.0.0.1" in url or "localhost" in url)


@pytest.fixture(autouse=True)
async def _dead_letter_supervisor_alive(request: pytest.FixtureRequest) -> None:
    """Before each test that restarts its broker: the previous one restarted the node and
    then deleted its topology, which can leave the broker unable to declare track queues
    (worker.lab.chaos.heal_dead_letter_supervisor); workers would then fail to start."""
    if request.node.get_closest_marker("restarts_broker") is None:
        return
    url = request.getfixturevalue("amqp_url")
    if local_node(url) and await heal_dead_letter_supervisor():
        print("the broker's dead-letter supervisor was dead; restarted it")


PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database (skips without a server at 127.0.0.1:5432)."""
    asyncpg = pytest.importorskip("asyncpg")
    try:
        admin = await asyncpg.connect(PG_ADMIN, timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432 ({exc!r})")
    name = f"ow_audit_{uuid.uuid4().hex[:8]}"
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


@asynccontextmanager
async def worker_on_binance_sim(amqp_url: str, monkeypatch: pytest.MonkeyPatch,
                                venue: dict[str, Any], **env: str
                                ) -> AsyncIterator[tuple[Harness, BinanceSim]]:
    """An in-process worker trading account ``acct1`` on a fresh Binance simulator;
    ``venue`` is its ``binance`` exchange config without the live driver and URL."""
    sim = BinanceSim({KEY: SECRET})
    url = await sim.start()
    monkeypatch.setenv("OW_CRED_ACCT1_BINANCE_API_KEY", KEY)
    monkeypatch.setenv("OW_CRED_ACCT1_BINANCE_SECRET", SECRET)
    exchanges = {"binance": {"driver": "binance", "live": True, "urls": {"rest": url}, **venue}}
    try:
        async with harness(amqp_url, OW_EXCHANGES=json.dumps(exchanges), **env) as h:
            await h.start_worker()
            yield h, sim
    finally:
        await sim.stop()

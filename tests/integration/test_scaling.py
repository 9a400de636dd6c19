"""3 workers + the audit consumer on the real broker, one shared exchange (the Binance
simulator): the load is shared, per-account order holds (also across a worker leaving),
and the audit store holds exactly one row per event."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from pathlib import Path

import pytest

from schemas import client_order_id
from tests.conftest import place
from tests.exchange.conftest import KEY, SECRET
from tests.integration.harness import harness
from worker.audit.consumer import AuditConsumer
from worker.audit.sqlite import SqliteStore
from worker.broker.topology import shard_for
from worker.lab.sim.binance import BinanceSim

SHARDS, WORKERS, PER_ACCOUNT = 6, 3, 12


def accounts_covering_all_shards(per_shard: int = 2) -> list[str]:
    by_shard: dict[int, list[str]] = defaultdict(list)
    n = 0
    while min((len(by_shard[s]) for s in range(SHARDS)), default=0) < per_shard:
        name = f"acc{n}"
        if len(by_shard[shard_for(name, SHARDS)]) < per_shard:
            by_shard[shard_for(name, SHARDS)].append(name)
        n += 1
    return [a for s in range(SHARDS) for a in by_shard[s]]


async def test_three_workers_audit_and_per_account_order(
        amqp_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    accounts = accounts_covering_all_shards()
    sim = BinanceSim({KEY: SECRET})
    url = await sim.start()
    for a in accounts:
        monkeypatch.setenv(f"OW_CRED_{a.upper()}_BINANCE_API_KEY", KEY)
        monkeypatch.setenv(f"OW_CRED_{a.upper()}_BINANCE_SECRET", SECRET)
    exchanges = {"binance": {"driver": "binance", "live": True, "urls": {"rest": url},
                             "rate_limit": False, "timeout_ms": 2000}}
    store = SqliteStore(str(tmp_path / "audit.sqlite3"))
    try:
        async with harness(amqp_url, OW_EXCHANGES=json.dumps(exchanges),
                           OW_SHARDS=str(SHARDS), OW_WORKER_COUNT=str(WORKERS),
                           OW_STANDBY_DELAY_S="2") as h:
            workers = list(await asyncio.gather(*(h.start_worker(worker_index=i)
                                                  for i in range(WORKERS))))
            audit = AuditConsumer(amqp_url, store, prefix=h.prefix, shards=SHARDS)
            await audit.start()
            await asyncio.sleep(2.5)  # standby subscriptions are in place
            cmds = [place(command_id=f"{a}-{i}", account=a, exchange="binance", amount="0.001")
                    for i in range(PER_ACCOUNT) for a in accounts]
            async with h.client() as client:
                for n, cmd in enumerate(cmds):
                    await client.send(cmd)
                    if n == len(cmds) // 2:
                        await workers[0].stop()  # its shards fail over, order must hold
                for cmd in cmds:
                    await client.wait_terminal(cmd.command_id, 60)
                duplicates_seen = client.duplicates
            await asyncio.sleep(0.5)
            await audit.flush()
            handled = [sum(s.value for m in w.metrics.commands.collect() for s in m.samples
                           if s.name.endswith("_total")) for w in workers]
            await audit.stop()
    finally:
        await sim.stop()

    # per-account order: each account's orders reached the exchange in command order
    book = sim.books[KEY]
    index = {client_order_id(c.account, c.command_id): (c.account, int(c.command_id.split("-")[1]))
             for c in cmds}
    seen: dict[str, list[int]] = defaultdict(list)
    for order in book._orders.values():
        account, i = index[order.req.client_order_id]
        seen[account].append(i)
    assert all(seen[a] == list(range(PER_ACCOUNT)) for a in accounts), dict(seen)
    assert max(sim.orders_per_client_id().values()) == 1
    # the load was shared: every worker executed commands
    assert all(n > 0 for n in handled), handled
    # the audit store: exactly one row per event, every order complete
    reopened = SqliteStore(str(tmp_path / "audit.sqlite3"))
    counts = await reopened.counts()
    assert counts == {"order_accepted": len(cmds), "order_filled": len(cmds)}, counts
    assert await reopened.open_orders() == []
    history = await reopened.history(cmds[0].command_id)
    assert [r["kind"] for r in history] == ["order_accepted", "order_filled"]
    await reopened.close()
    assert duplicates_seen >= 0

"""Audit store on PostgreSQL, metrics/health endpoints, and the submit CLI."""

from __future__ import annotations

import asyncio
import socket
import sys
from datetime import UTC, datetime
from decimal import Decimal

import aiohttp
import pytest

from schemas import OrderAccepted, OrderFilled
from tests.conftest import place
from tests.integration.harness import harness
from worker.audit.pg import PostgresStore
from worker.observability import serve_observability


def _events(cid: str) -> list[object]:
    common = {"command_id": "c1", "account": "a", "exchange": "paper", "symbol": "BTC/USDT",
              "client_order_id": cid, "occurred_at": datetime.now(UTC),
              "amount": Decimal("0.5")}
    return [OrderAccepted(event_id=f"{cid}-1", sequence=0, **common),  # type: ignore[arg-type]
            OrderFilled(event_id=f"{cid}-2", sequence=1_000_001, filled=Decimal("0.5"),
                        average_price=Decimal("60000.5"), **common)]  # type: ignore[arg-type]


async def test_postgres_store_dedupes_and_is_append_only(pg_url: str) -> None:
    import asyncpg

    store = PostgresStore(pg_url)
    events = _events("ow-pg-1")
    assert await store.append(events) == 2  # type: ignore[arg-type]
    assert await store.append(events) == 0  # type: ignore[arg-type]  # redelivery: no-op
    assert await store.counts() == {"order_accepted": 1, "order_filled": 1}
    history = await store.history("ow-pg-1")
    assert [r["kind"] for r in history] == ["order_accepted", "order_filled"]
    assert history[1]["average_price"] == Decimal("60000.5")
    assert await store.open_orders() == []
    await store.append(_events("ow-pg-2")[:1])  # type: ignore[arg-type]
    assert await store.open_orders() == ["ow-pg-2"]
    conn = await asyncpg.connect(pg_url)
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await conn.execute("DELETE FROM ow_events")
    await conn.close()
    await store.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_metrics_and_health_endpoints(amqp_url: str) -> None:
    port = _free_port()
    async with harness(amqp_url) as h:
        worker = await h.start_worker()
        runner = await serve_observability(worker, port, host="127.0.0.1")
        assert runner is not None
        try:
            async with h.client() as client:
                await client.submit(place(), timeout_s=20)
            async with aiohttp.ClientSession() as http:
                base = f"http://127.0.0.1:{port}"
                assert (await http.get(f"{base}/healthz")).status == 200
                assert (await http.get(f"{base}/readyz")).status == 200
                # the worker counts an order once its events are confirmed, which may be
                # just after the client saw them
                for _ in range(50):
                    metrics = await (await http.get(f"{base}/metrics")).text()
                    if 'ow_orders_total{outcome="filled"}' in metrics:
                        break
                    await asyncio.sleep(0.1)
                await worker.stop()
                assert (await http.get(f"{base}/readyz")).status == 503
        finally:
            await runner.cleanup()
    assert 'ow_orders_total{outcome="filled"} 1.0' in metrics
    assert "ow_command_to_terminal_seconds_bucket" in metrics
    assert 'ow_events_published_total{kind="order_filled"} 1.0' in metrics


async def test_submit_cli_prints_the_order_events(amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        await h.start_worker()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker", "submit", "--amqp-url", amqp_url,
            "--prefix", h.prefix, "--account", "cli1", "--symbol", "ETH/USDT",
            "--side", "buy", "--amount", "0.1", "--command-id", "cli-cmd-1",
            stdout=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    lines = out.decode().splitlines()
    assert proc.returncode == 0
    assert '"kind":"order_accepted"' in lines[0] and '"kind":"order_filled"' in lines[-1]


async def _cli(*args: str, env: dict[str, str] | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "worker", *args,
                                                stdout=asyncio.subprocess.PIPE, env=env)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out
    return out.decode()


async def test_audit_cli_records_and_reports(amqp_url: str, tmp_path: object) -> None:
    import os
    import signal

    db = f"{tmp_path}/audit.sqlite3"
    async with harness(amqp_url) as h:
        await h.start_worker()
        env = {**os.environ, "AMQP_URL": amqp_url, "OW_PREFIX": h.prefix}
        audit = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker", "audit", "run", "--db", db, env=env,
            stdout=asyncio.subprocess.PIPE)
        assert audit.stdout is not None
        assert b"auditing" in await asyncio.wait_for(audit.stdout.readline(), 30)
        async with h.client() as client:
            cmds = [place(command_id=f"aud-{i}") for i in range(5)]
            for cmd in cmds:
                await client.submit(cmd, timeout_s=30)
            await client.submit(place(command_id="aud-big", amount="1000"), timeout_s=30)
        await asyncio.sleep(0.5)
        audit.send_signal(signal.SIGTERM)
        await asyncio.wait_for(audit.wait(), 30)
    summary = await _cli("audit", "summary", "--db", db)
    history = await _cli("audit", "history", "aud-0", "--db", db)
    assert "order_accepted=5" in summary and "order_filled=5" in summary
    assert "order_rejected=1" in summary
    assert "accepted without a terminal event: 0" in summary
    assert "order_accepted" in history.splitlines()[0] and "order_filled" in history

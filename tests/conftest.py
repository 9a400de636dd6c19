"""Shared fixtures: a real RabbitMQ (AMQP_URL; else the local broker when it answers;
else testcontainers where a Docker engine runs) and command builders."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas import CancelOrder, PlaceOrder

LOCAL_BROKER = "amqp://guest:guest@127.0.0.1:5672/"


def _docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def _local_broker_answers() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
    except OSError:
        return False
    return True


def broker_source(env: dict[str, str] | os._Environ[str], local_answers: Callable[[], bool],
                  docker: Callable[[], bool]) -> str:
    """'env' (AMQP_URL set), 'local' (a broker answers on 5672), 'testcontainers'
    (a Docker engine runs), else 'local' (the connection error will say so)."""
    if env.get("AMQP_URL"):
        return "env"
    if local_answers():
        return "local"
    return "testcontainers" if docker() else "local"


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    source = broker_source(os.environ, _local_broker_answers, _docker_available)
    if source == "env":
        yield os.environ["AMQP_URL"]
    elif source == "testcontainers":
        from testcontainers.rabbitmq import RabbitMqContainer

        with RabbitMqContainer("rabbitmq:3.13-management") as rabbit:
            host, port = rabbit.get_container_host_ip(), rabbit.get_exposed_port(5672)
            yield f"amqp://guest:guest@{host}:{port}/"
    else:
        yield LOCAL_BROKER


def place(**kw: Any) -> PlaceOrder:
    base: dict[str, Any] = {
        "command_id": f"c-{uuid.uuid4().hex[:12]}", "account": "acct1", "exchange": "paper",
        "symbol": "BTC/USDT", "side": "buy", "type": "market", "amount": "0.01",
        "created_at": datetime.now(UTC), "timeout_s": 5.0,
    }
    base.update(kw)
    return PlaceOrder(**base)


def cancel(target: str, **kw: Any) -> CancelOrder:
    base: dict[str, Any] = {
        "command_id": f"x-{uuid.uuid4().hex[:12]}", "account": "acct1", "exchange": "paper",
        "symbol": "BTC/USDT", "target_command_id": target, "created_at": datetime.now(UTC),
    }
    base.update(kw)
    return CancelOrder(**base)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Show the placement simulation's counts (issue 10), also when run on xdist workers."""
    for kind in ("passed", "failed"):
        for rep in terminalreporter.stats.get(kind, []):
            for name, value in getattr(rep, "user_properties", ()):
                if name == "placement_simulation":
                    terminalreporter.write_line(str(value))

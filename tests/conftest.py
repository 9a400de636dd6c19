"""Shared fixtures: a real RabbitMQ (AMQP_URL, else testcontainers where Docker runs,
else the local broker) and command builders."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas import CancelOrder, PlaceOrder

LOCAL_BROKER = "amqp://guest:guest@127.0.0.1:5672/"


def _docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    if os.environ.get("AMQP_URL"):
        yield os.environ["AMQP_URL"]
    elif _docker_available():
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

"""``make demo EXCHANGE=binance|bybit``: the demo's sample orders through the local
exchange servers and the real ccxt client, on the real broker."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_demo_runs_on_local_exchange_servers(amqp_url: str, exchange: str) -> None:
    env = dict(os.environ, AMQP_URL=amqp_url, EXCHANGE=exchange)
    out = subprocess.run([sys.executable, "-m", "worker", "demo"], env=env,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert f"local {exchange} servers" in out.stdout and "missing: none" in out.stdout


def test_unknown_demo_exchange_names_the_choices(amqp_url: str) -> None:
    env = dict(os.environ, AMQP_URL=amqp_url, EXCHANGE="kraken")
    out = subprocess.run([sys.executable, "-m", "worker", "demo"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "paper, binance, bybit" in out.stdout + out.stderr

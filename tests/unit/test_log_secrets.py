"""Issue 10, item 13: secrets never reach logs or events, whatever the log format."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from tests.conftest import place
from tests.unit.test_handlers import make
from worker.errors import TransientError
from worker.logs import REDACTOR, setup_logging
from worker.orders.handlers import handle
from worker.ports import Delivery

KEY, SECRET = "AKIAkey0123456789", "very-secret-value-42"
URL = f"https://api.binance.com/api/v3/order?apiKey={KEY}&timestamp=1&signature=d34db33f99"


@pytest.fixture
def logs(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    REDACTOR.add(KEY, SECRET)
    yield capsys
    root.handlers[:] = handlers
    root.setLevel(level)


def _log_failure() -> None:
    log = logging.getLogger("test.secrets")
    try:
        raise RuntimeError(f"POST {URL} failed; secret {SECRET}")
    except RuntimeError:
        log.exception("create failed", extra={"request_url": URL, "api_key": KEY,
                                              "params": {"secret": SECRET}})


@pytest.mark.parametrize("as_json", [False, True])
def test_tracebacks_and_extra_fields_are_scrubbed(logs: pytest.CaptureFixture[str],
                                                  as_json: bool) -> None:
    setup_logging("INFO", json=as_json)
    _log_failure()
    err = logs.readouterr().err
    assert "RuntimeError" in err and "create failed" in err  # the line is there ...
    for secret in (KEY, SECRET, "d34db33f99"):                # ... without secrets
        assert secret not in err, err
    if as_json:
        line = json.loads(err.splitlines()[-1])
        assert line["api_key"] == "**redacted**" and "request_url" in line


async def test_order_failed_message_from_a_non_ccxt_error_is_scrubbed() -> None:
    REDACTOR.add(KEY, SECRET)
    deps, pub, _ = make(OW_INTAKE_BUDGET_S="0.05")
    deps.exchanges.exchanges["paper"].create_faults.extend(  # type: ignore[attr-defined]
        [(TransientError(f"aiohttp: 503 for {URL} (secret {SECRET})"), False)] * 20)
    await handle(place(), deps, Delivery())
    assert pub.kinds() == ["OrderFailed"]
    message = pub.events[0].message  # type: ignore[union-attr]
    assert "503" in message
    for secret in (KEY, SECRET, "d34db33f99"):
        assert secret not in message

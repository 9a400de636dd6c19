from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path

from worker.exchange.credentials import load_credentials
from worker.logs import REDACTOR, JsonFormatter, bind


def test_credentials_from_env_and_files_never_print(tmp_path: Path) -> None:
    env = {"OW_CRED_DESK_1_BINANCE_API_KEY": "AKIA-very-secret",
           "OW_CRED_DESK_1_BINANCE_SECRET": "s3cr3t-value"}
    creds = load_credentials("desk-1", "binance", env=env)
    assert creds is not None and creds.api_key.reveal() == "AKIA-very-secret"
    assert "secret" not in repr(creds).replace("secret=**redacted**", "")
    assert "s3cr3t" not in f"{creds} {creds.secret} {creds.api_key!r}"
    d = tmp_path / "desk2" / "bybit"
    d.mkdir(parents=True)
    (d / "api_key").write_text("file-key-123\n")
    (d / "secret").write_text("file-secret-456\n")
    from_files = load_credentials("desk2", "bybit", secrets_dir=str(tmp_path), env={})
    assert from_files is not None and from_files.secret.reveal() == "file-secret-456"
    assert load_credentials("nobody", "bybit", secrets_dir=str(tmp_path), env={}) is None


def test_json_logs_carry_ids_and_redact_secrets() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(REDACTOR)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.redact")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    REDACTOR.add("super-secret-value")

    async def one_command() -> None:
        bind(command_id="cmd-9", client_order_id="ow-abc")
        logger.info("calling exchange with secret=super-secret-value apiKey=AKIA123456 ok")

    asyncio.run(one_command())
    logger.info("outside any command")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["command_id"] == "cmd-9" and first["client_order_id"] == "ow-abc"
    assert "super-secret-value" not in first["msg"] and "AKIA123456" not in first["msg"]
    assert "command_id" not in second  # context is per task

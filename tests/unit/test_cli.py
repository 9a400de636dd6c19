"""CLI without a broker: version, plain-language validation, audit errors and export."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

from tests.audit_events import order_events, rejected
from worker.audit.sqlite import SqliteStore
from worker.messages import explain

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "worker", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


def test_version() -> None:
    out = cli("--version")
    assert out.returncode == 0 and out.stdout.startswith("orderworker 0.")


def test_submit_validates_before_publishing_in_plain_language() -> None:
    # no broker is contacted: the URL points nowhere and the command is refused first
    out = cli("submit", "--amqp-url", "amqp://127.0.0.1:1/", "--account", "desk1",
              "--symbol", "BTC/USDT", "--side", "buy", "--amount", "-1")
    assert out.returncode == 2
    assert out.stderr.strip() == ("invalid order: amount must be a decimal string like '0.01' "
                                  "(digits and an optional fraction, no sign), got '-1'")
    bad_symbol = cli("submit", "--amqp-url", "amqp://127.0.0.1:1/", "--account", "desk1",
                     "--symbol", "btcusdt", "--side", "buy", "--amount", "1")
    assert bad_symbol.returncode == 2 and "like 'BTC/USDT'" in bad_symbol.stderr
    assert "regex" not in out.stderr + bad_symbol.stderr


def test_submit_reports_an_unreachable_broker_without_a_traceback() -> None:
    out = cli("submit", "--amqp-url", "amqp://u:pw@127.0.0.1:1/", "--account", "desk1",
              "--symbol", "BTC/USDT", "--side", "buy", "--amount", "1")
    assert out.returncode == 3 and "cannot reach the broker at amqp://u:***@127.0.0.1:1/" \
        in out.stderr
    assert "Traceback" not in out.stderr and "pw" not in out.stderr


def test_explain_names_fields_choices_and_unknown_keys() -> None:
    import msgspec

    from schemas.commands import Command

    def why(raw: dict[str, object]) -> str:
        base = {"kind": "place_order", "command_id": "c1", "account": "a", "exchange": "paper",
                "symbol": "BTC/USDT", "side": "buy", "type": "market", "amount": "1",
                "created_at": "2026-01-01T00:00:00Z"}
        try:
            msgspec.convert({**base, **raw}, Command)
        except msgspec.ValidationError as exc:
            return explain(exc, Command, {**base, **raw})
        return "ok"

    assert why({"side": "long"}) == "side must be one of 'buy', 'sell', got 'long'"
    assert why({"amont": "1"}) == "unknown field 'amont' (did you mean 'amount'?)"
    assert why({"timeout_s": 10**9}) == "timeout_s must be a number <= 31622400.0, got 1000000000"
    assert why({"created_at": "2026-01-01T00:00:00"}).startswith("created_at must be")


def _db(tmp_path: Path) -> str:
    import asyncio

    path = str(tmp_path / "audit.sqlite3")

    async def fill() -> None:
        store = SqliteStore(path)
        await store.append([*order_events("ow-1"), rejected("ow-2", account="desk2")])
        await store.close()

    asyncio.run(fill())
    return path


def test_audit_history_unknown_id_is_an_error(tmp_path: Path) -> None:
    db = _db(tmp_path)
    found = cli("audit", "history", "ow-1", "--db", db)
    assert found.returncode == 0 and "order_filled" in found.stdout and "USDT" in found.stdout
    out = cli("audit", "history", "no-such-order", "--db", db)
    assert out.returncode == 1 and "no events for 'no-such-order'" in out.stderr


def test_audit_reads_never_create_and_bad_databases_are_clear(tmp_path: Path) -> None:
    missing = tmp_path / "missing.sqlite3"
    out = cli("audit", "summary", "--db", str(missing))
    assert out.returncode == 2 and "no audit database" in out.stderr
    assert not missing.exists()
    junk = tmp_path / "junk"
    junk.write_text("not sqlite " * 200)
    for db in (str(junk), str(tmp_path / "no-dir" / "x.sqlite3")):
        bad = cli("audit", "history", "x", "--db", db)
        assert bad.returncode == 2, bad.stderr
        assert "Traceback" not in bad.stderr and "Event loop is closed" not in bad.stderr


def test_audit_export_csv_and_jsonl(tmp_path: Path) -> None:
    db = _db(tmp_path)
    out = cli("audit", "export", "--format", "csv", "--db", db)
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert out.returncode == 0 and len(rows) == 3
    assert {r["reason"] for r in rows} == {"", "risk_max_notional"}
    assert "body" not in rows[0] and rows[0]["side"] in ("buy", "sell")
    lines = cli("audit", "export", "--db", db, "--account", "desk2").stdout.splitlines()
    assert [json.loads(line)["kind"] for line in lines] == ["order_rejected"]


def test_explain_json_for_message_bodies() -> None:
    import msgspec

    from schemas.commands import Command, decode_command
    from worker.messages import explain_json

    def why(body: bytes) -> str:
        try:
            decode_command(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return explain_json(exc, Command, body)
        return "ok"

    assert why(b"\xff\xfenot json").startswith("not valid JSON (")
    body = (b'{"kind": "place_order", "command_id": "c1", "account": "a", "exchange": "paper",'
            b' "symbol": "BTC/USDT", "side": "buy", "type": "market", "amount": "1e3",'
            b' "created_at": "2026-01-01T00:00:00Z"}')
    assert why(body) == ("amount must be a decimal string like '0.01' (digits and an optional "
                         "fraction, no sign), got '1e3'")
    assert why(body.replace(b'"amount": "1e3",', b"")) == "amount is required"


def test_run_and_audit_run_report_an_unreachable_broker_in_one_line(tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("OW_")}
    env.update(AMQP_URL="amqp://u:pw@127.0.0.1:1/", OW_LOG_LEVEL="CRITICAL")
    for args in (["run"], ["audit", "run", "--db", str(tmp_path / "a.sqlite3")]):
        out = subprocess.run([sys.executable, "-m", "worker", *args], capture_output=True,
                             text=True, cwd=ROOT, timeout=60, env=env)
        assert out.returncode == 3, out.stderr
        assert "cannot reach the broker at amqp://u:***@127.0.0.1:1/" in out.stderr
        assert "make broker" in out.stderr and "Traceback" not in out.stderr
        assert "pw" not in out.stderr

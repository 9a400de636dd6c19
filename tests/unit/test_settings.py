"""Configuration fails fast, names what to fix, and is documented from the code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from worker.config import driver_problems, redacted
from worker.exchange.factory import ExchangeFactory
from worker.settings import ConfigError, load_settings
from worker.settings_doc import DOC_PATH, missing_docs, render

ROOT = Path(__file__).resolve().parents[2]


def problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    return info.value.problems


def test_typo_in_exchange_config_refuses_start_naming_the_key() -> None:
    found = problems({"OW_EXCHANGES": '{"binance": {"driver": "binance", "sandbx": true}}'})
    assert found == ["unknown field 'sandbx' in OW_EXCHANGES['binance'] "
                     "(did you mean 'sandbox'?)"]


def test_unknown_ow_variable_is_refused_with_the_closest_name() -> None:
    assert problems({"OW_SHARD": "8"}) == [
        "unknown environment variable OW_SHARD (did you mean 'OW_SHARDS'?)"]
    assert "OW_RISK_MAX_NOTIONAL" in problems({"OW_RISK_MAX_NOTINAL": "5"})[0]
    assert "_API_KEY, _SECRET or _PASSWORD" in problems({"OW_CRED_D_BINANCE_APIKEY": "x"})[0]


def test_documented_variable_families_are_accepted() -> None:
    s = load_settings({"OW_CRED_DESK_1_BINANCE_API_KEY": "k", "OW_CRED_DESK_1_BINANCE_SECRET": "s",
                       "OW_CRED_DESK_1_OKX_PASSWORD": "p", "OW_RISK_MAX_NOTIONAL": "10",
                       "OW_SHARDS": "8", "OW_LOG_LEVEL": "debug"})
    assert s.shards == 8 and str(s.risk.max_notional) == "10" and s.log_level == "DEBUG"


@pytest.mark.parametrize(("env", "expected"), [
    ({"OW_SHARDS": "0"}, "OW_SHARDS must be an integer >= 1, got '0'"),
    ({"OW_SHARDS": "-3"}, "OW_SHARDS must be an integer >= 1, got '-3'"),
    ({"OW_SHARDS": "many"}, "OW_SHARDS must be an integer, got 'many'"),
    ({"OW_PREFETCH": "0"}, "OW_PREFETCH must be an integer >= 1, got '0'"),
    ({"OW_DELIVERY_LIMIT": "0"}, "OW_DELIVERY_LIMIT must be an integer >= 1, got '0'"),
    ({"OW_METRICS_PORT": "70000"}, "OW_METRICS_PORT must be an integer <= 65535, got '70000'"),
    ({"OW_TRACK_POLL_S": "0"}, "OW_TRACK_POLL_S must be a number > 0.0, got '0'"),
    ({"OW_RISK_MAX_NOTIONAL": "abc"},
     "OW_RISK_MAX_NOTIONAL must be a decimal number like '0.01', got 'abc'"),
    ({"OW_LOG_LEVEL": "loud"}, "OW_LOG_LEVEL must be one of 'CRITICAL', 'DEBUG', 'ERROR', "
                               "'INFO', 'WARNING', got 'LOUD'"),
    ({"OW_EXCHANGES": '{"b": {"driver": "bybit", "sandbox": true, "market_type": "futures"}}'},
     "OW_EXCHANGES['b'].market_type must be one of 'future', 'spot', 'swap', got 'futures'"),
    ({"OW_EXCHANGES": '{"b": '}, "OW_EXCHANGES is not valid JSON: Expecting value at line 1 "
                                 "column 7"),
    ({"OW_TRACK_CYCLE_S": "0.05"}, "OW_TRACK_CYCLE_S must be a number >= 0.1, got '0.05'"),
])
def test_bounds_and_formats_are_checked_in_plain_language(env: dict[str, str],
                                                          expected: str) -> None:
    assert problems(env) == [expected]


def test_every_problem_is_listed_at_once() -> None:
    found = problems({"OW_SHARDS": "0", "OW_PREFETCH": "-1", "OW_FOO": "1"})
    assert len(found) == 3 and "OW_FOO" in found[0]


def test_live_exchange_needs_explicit_opt_in() -> None:
    found = problems({"OW_EXCHANGES": '{"binance": {"driver": "binance"}}'})
    assert "exchange 'binance' would trade real money" in found[0] and '"live": true' in found[0]
    load_settings({"OW_EXCHANGES": '{"binance": {"driver": "binance", "sandbox": true}}'})
    load_settings({"OW_EXCHANGES": '{"binance": {"driver": "binance", "live": true}}'})
    both = '{"binance": {"driver": "binance", "live": true, "sandbox": true}}'
    assert "exclude each other" in problems({"OW_EXCHANGES": both})[0]


def test_unknown_driver_is_refused_at_start_up_not_at_first_order() -> None:
    s = load_settings({"OW_EXCHANGES": '{"x": {"driver": "binanse", "live": true}}'})
    found = driver_problems(s, ExchangeFactory(s).drivers())
    assert found == ["exchange 'x' has unknown driver 'binanse' (did you mean 'binance'?) "
                     "(known: binance, bybit, ccxt, paper)"]


def test_config_check_redacts_secrets_and_exits_non_zero_on_problems(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "OW_AMQP_URL": "amqp://bob:hunter2@broker:5672/",
           "OW_CRED_DESK1_BINANCE_SECRET": "s3cret-value", "OW_EXCHANGES": json.dumps(
               {"binance": {"driver": "binance", "sandbox": True,
                            "options": {"apiKey": "inline-key"}}})}
    ok = subprocess.run([sys.executable, "-m", "worker.cli", "config", "check"], env=env,
                        capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    for secret in ("hunter2", "s3cret-value", "inline-key"):
        assert secret not in ok.stdout
    shown = json.loads(ok.stdout)
    assert shown["amqp_url"] == "amqp://bob:***@broker:5672/"
    assert shown["credentials"] == {"OW_CRED_DESK1_BINANCE_SECRET": "***"}
    bad = subprocess.run([sys.executable, "-m", "worker.cli", "config", "check"],
                         env={**env, "OW_SHARD": "8", "OW_SHARDS": "0"},
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "OW_SHARD " in bad.stderr and "OW_SHARDS must" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_redacted_keeps_non_secret_values() -> None:
    shown = redacted(load_settings({"OW_SHARDS": "8"}), {})
    assert shown["shards"] == 8 and shown["credentials"] == {}


def test_every_setting_has_a_docstring() -> None:
    assert missing_docs() == [], "add a docstring under each settings field"


def test_settings_reference_is_in_sync_with_the_code() -> None:
    assert DOC_PATH.read_text() == render(), "regenerate: python -m worker.settings_doc --write"
    readme = (ROOT / "README.md").read_text()
    assert "docs/settings.md" in readme


def test_cross_field_rules_see_all_values_together() -> None:
    s = load_settings({"OW_RETRY_INITIAL_S": "0.001", "OW_RETRY_MAX_BACKOFF_S": "0.001"})
    assert s.retry_max_backoff_s == 0.001
    assert problems({"OW_RETRY_INITIAL_S": "9"}) == [
        "OW_RETRY_INITIAL_S must not exceed OW_RETRY_MAX_BACKOFF_S"]


def test_run_refuses_to_start_on_a_config_typo_or_unknown_driver() -> None:
    base = {"PATH": "/usr/bin:/bin", "OW_AMQP_URL": "amqp://127.0.0.1:1/"}
    for env, expected in (
            ({"OW_EXCHANGES": '{"b": {"driver": "binance", "sandbx": true}}'},
             "unknown field 'sandbx' in OW_EXCHANGES['b'] (did you mean 'sandbox'?)"),
            ({"OW_EXCHANGES": '{"b": {"driver": "binanse", "sandbox": true}}'},
             "exchange 'b' has unknown driver 'binanse'"),
            ({"OW_SHARDS": "-3"}, "OW_SHARDS must be an integer >= 1, got '-3'")):
        run = subprocess.run([sys.executable, "-m", "worker", "run"], env={**base, **env},
                             capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert run.returncode == 2 and expected in run.stderr, run.stderr
        assert "Traceback" not in run.stderr


def test_secrets_dir_must_exist(tmp_path: Path) -> None:
    assert problems({"OW_SECRETS_DIR": str(tmp_path / "nope")}) == [
        f"OW_SECRETS_DIR '{tmp_path / 'nope'}' is not a directory"]
    assert load_settings({"OW_SECRETS_DIR": str(tmp_path)}).secrets_dir == str(tmp_path)


def test_audit_run_refuses_a_config_typo(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "worker", "audit", "run", "--db",
                          str(tmp_path / "a.sqlite3")],
                         env={"PATH": "/usr/bin:/bin", "OW_SHRADS": "8"},
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert run.returncode == 2 and "OW_SHRADS (did you mean 'OW_SHARDS'?)" in run.stderr
    assert not (tmp_path / "a.sqlite3").exists()


def test_problems_of_every_stage_are_reported_together() -> None:
    found = problems({"OW_SHARD": "8",
                      "OW_EXCHANGES": '{"binance": {"driver": "binance"}, '
                                      '"bybit": {"driver": "bybit", "sandbx": true}}'})
    assert len(found) == 3, found
    assert "OW_SHARD " in found[0] and "sandbx" in found[1]
    assert "exchange 'binance' would trade real money" in found[2]

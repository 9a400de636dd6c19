"""Settings from the environment, checked before anything starts.

``build_settings`` collects every problem instead of stopping at the first:
unknown ``OW_*`` variables (with the closest valid name), values out of range,
unknown keys in ``OW_EXCHANGES`` and a real-money exchange without
``"live": true``. ``driver_problems`` checks exchange
drivers against a factory's registry; ``redacted`` is what ``orderworker config
check`` prints.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import urlsplit, urlunsplit

import msgspec

from worker.messages import explain, suggest
from worker.settings import ConfigError, ExchangeConfig, RiskLimits, Settings

NESTED = ("risk", "exchanges")
CRED_VAR = re.compile(r"^OW_CRED_[A-Z0-9_]+_(API_KEY|SECRET|PASSWORD)$")
EXCHANGE_NAME = re.compile(r"^[a-z0-9_]{1,32}$")
EXTRA_VARS = ("OW_EXCHANGES_FILE",)
_SECRET_KEY = re.compile(r"key|secret|password|token|passphrase", re.I)


def env_name(field: str) -> str:
    return f"OW_{field.upper()}"


def _risk_path(parts: list[str]) -> str:
    return f"OW_RISK_{parts[0].upper()}" if parts else ""


def known_vars() -> list[str]:
    """Every valid ``OW_*`` name except the credential family."""
    names = [env_name(f) for f in Settings.__struct_fields__ if f != "risk"]
    return names + [f"OW_RISK_{f.upper()}" for f in RiskLimits.__struct_fields__] + [
        *EXTRA_VARS]


def env_problems(env: Mapping[str, str]) -> list[str]:
    """Unknown ``OW_*`` variables, each with the closest valid name."""
    known = set(known_vars())
    out = []
    for key in sorted(k for k in env if k.startswith("OW_")):
        if key in known or CRED_VAR.match(key):
            continue
        if key.startswith("OW_CRED_"):
            out.append(f"unknown environment variable {key}: credential variables are "
                       "OW_CRED_<ACCOUNT>_<EXCHANGE>_API_KEY, _SECRET or _PASSWORD")
        else:
            out.append(f"unknown environment variable {key}{suggest(key, sorted(known))}")
    return out


def _check(raw: Mapping[str, Any], target: type, name: Any) -> str | None:
    try:
        msgspec.convert(raw, target, strict=False)
    except msgspec.ValidationError as exc:
        return explain(exc, target, dict(raw), name=name)
    return None


def _check_field(field: str, value: Any) -> str | None:
    """One setting against its own type and bounds (cross-field rules come later)."""
    hint = get_type_hints(Settings, include_extras=True)[field]
    try:
        msgspec.convert(value, hint, strict=False)
    except msgspec.ValidationError as exc:
        return explain(exc, hint, value, name=lambda parts: env_name(field) + "".join(
            f"[{p!r}]" for p in parts))
    return None


def _load_exchanges(env: Mapping[str, str], problems: list[str]) -> dict[str, Any]:
    exchanges: dict[str, Any] = {"paper": {}}
    sources = []
    if env.get("OW_EXCHANGES_FILE"):
        path = Path(env["OW_EXCHANGES_FILE"])
        try:
            sources.append(("OW_EXCHANGES_FILE", path.read_text()))
        except OSError as exc:
            problems.append(f"OW_EXCHANGES_FILE: cannot read {path}: {exc.strerror}")
    if env.get("OW_EXCHANGES"):
        sources.append(("OW_EXCHANGES", env["OW_EXCHANGES"]))
    for var, text in sources:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.append(f"{var} is not valid JSON: {exc.msg} at line {exc.lineno} "
                            f"column {exc.colno}")
            continue
        if not isinstance(data, dict):
            problems.append(f'{var} must be a JSON object like {{"binance": {{...}}}}')
            continue
        exchanges.update(data)
    return exchanges


def _exchange_problems(exchanges: Mapping[str, Any]) -> list[str]:
    out = []
    for ex_name, cfg in exchanges.items():
        def name(parts: list[str], ex_name: str = ex_name) -> str:
            return f"OW_EXCHANGES[{ex_name!r}]" + "".join(f".{p}" for p in parts)

        if not EXCHANGE_NAME.match(ex_name):
            out.append(f"exchange name {ex_name!r} must be 1 to 32 lower-case letters, "
                       "digits or '_' (commands name exchanges that way)")
        if isinstance(cfg, ExchangeConfig):
            continue
        if not isinstance(cfg, dict):
            out.append(f"{name([])} must be a JSON object, got {cfg!r}")
        elif (problem := _check(cfg, ExchangeConfig, name)) is not None:
            out.append(problem)
    return out


def live_problems(settings: Settings) -> list[str]:
    """A real-money exchange must say so: ``"live": true``."""
    return [f"exchange {n!r} would trade real money: set \"sandbox\": true to use its "
            f"testnet, or \"live\": true in OW_EXCHANGES[{n!r}] to confirm live trading"
            for n, cfg in settings.exchanges.items()
            if cfg.driver != "paper" and not cfg.sandbox and not cfg.live]


def driver_problems(settings: Settings, drivers: Iterable[str]) -> list[str]:
    """Exchanges whose driver is not registered (checked at start-up, not first order)."""
    known = sorted(drivers)
    return [f"exchange {n!r} has unknown driver {cfg.driver!r}"
            f"{suggest(cfg.driver, known) or ''} (known: {', '.join(known)})"
            for n, cfg in settings.exchanges.items() if cfg.driver not in known]


def build_settings(env: Mapping[str, str], overrides: Mapping[str, Any]) -> Settings:
    """Settings from ``env`` plus ``overrides``; ConfigError lists every problem."""
    problems = env_problems(env)
    raw: dict[str, Any] = {}
    for field in Settings.__struct_fields__:
        if field not in NESTED and env_name(field) in env:
            raw[field] = env[env_name(field)]
    if "AMQP_URL" in env and "amqp_url" not in raw:
        raw["amqp_url"] = env["AMQP_URL"]
    if isinstance(raw.get("log_level"), str):
        raw["log_level"] = raw["log_level"].upper()
    raw.update((k, v) for k, v in overrides.items() if k not in NESTED)
    good: dict[str, Any] = {}
    for field, value in raw.items():
        if field not in Settings.__struct_fields__:
            problems.append(f"unknown setting {field!r}"
                            f"{suggest(field, Settings.__struct_fields__)}")
        elif (p := _check_field(field, value)):
            problems.append(p)
        else:
            good[field] = value
    risk = overrides.get("risk")
    if risk is None:
        risk = {f: env[f"OW_RISK_{f.upper()}"] for f in RiskLimits.__struct_fields__
                if f"OW_RISK_{f.upper()}" in env}
        if p := _check(risk, RiskLimits, _risk_path):
            problems.append(p)
            risk = {}
    exchanges = overrides.get("exchanges")
    if exchanges is None:
        exchanges = _load_exchanges(env, problems)
    valid, broken = {}, set()
    for ex_name, cfg in exchanges.items():
        found = _exchange_problems({ex_name: cfg})
        problems += found
        if found:
            broken.add(ex_name)
        else:
            valid[ex_name] = cfg
    # go on with what is valid, so later checks can report their problems too
    try:
        settings = msgspec.convert({**good, "risk": risk, "exchanges": valid}, Settings,
                                   strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError([*problems, explain(exc, Settings)]) from None
    problems += live_problems(settings)
    if settings.secrets_dir and not Path(settings.secrets_dir).is_dir():
        problems.append(f"OW_SECRETS_DIR {settings.secrets_dir!r} is not a directory")
    if problems:
        raise ConfigError(problems)
    return settings


def unreachable(amqp_url: str, exc: BaseException) -> str:
    """One line for a broker that did not answer, naming what to check."""
    why = exc.args[-1] if exc.args else exc
    return (f"cannot reach the broker at {redact_url(amqp_url)} ({why}): start RabbitMQ "
            "(make broker) or set AMQP_URL / OW_AMQP_URL to a broker that answers")


def redact_url(url: str) -> str:
    """The address with its password replaced, each address of a comma-separated list."""
    if "," in url:
        return ",".join(redact_url(u.strip()) for u in url.split(","))
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _redact_tree(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "***" if _SECRET_KEY.search(str(k)) and v else _redact_tree(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_tree(v) for v in value]
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value


def redacted(settings: Settings, env: Mapping[str, str]) -> dict[str, Any]:
    """The effective configuration without secrets (passwords, keys, credentials)."""
    out: dict[str, Any] = _redact_tree(msgspec.to_builtins(settings))
    out["credentials"] = {k: "***" for k in sorted(env) if CRED_VAR.match(k)}
    return out

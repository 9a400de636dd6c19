"""Generate docs/settings.md from the settings code (field docstrings, types, defaults).

    python -m worker.settings_doc --write     # rewrite docs/settings.md
    python -m worker.settings_doc             # print it

A test keeps the file in sync and requires a docstring on every field.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import sys
from pathlib import Path
from typing import Any

import msgspec
from msgspec import inspect as mi

from worker import settings as settings_module
from worker.settings import ExchangeConfig, RiskLimits, Settings

DOC_PATH = Path(__file__).resolve().parents[1] / "docs" / "settings.md"
_NOTHING = (msgspec.NODEFAULT,)


def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings (a string literal right after the field) of one class."""
    tree = ast.parse(inspect.getsource(settings_module))
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__)
    out: dict[str, str] = {}
    body = node.body
    for stmt, nxt in zip(body, [*body[1:], None], strict=True):
        if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):
            out[stmt.target.id] = " ".join(nxt.value.value.split())
    return out


def missing_docs() -> list[str]:
    """Fields without a docstring, as ``Class.field``."""
    return [f"{cls.__name__}.{f}" for cls in (Settings, RiskLimits, ExchangeConfig)
            for f in cls.__struct_fields__ if f not in field_docs(cls)]


def _type(t: mi.Type) -> str:
    if isinstance(t, mi.UnionType):
        return " or ".join(_type(x) for x in t.types)
    if isinstance(t, mi.LiteralType):
        return " \\| ".join(f"`{v}`" for v in t.values)
    if isinstance(t, mi.DictType):
        return f"object of {_type(t.value_type)}"
    if isinstance(t, mi.StructType):
        return "object"
    names = {mi.IntType: "integer", mi.FloatType: "number", mi.StrType: "string",
             mi.BoolType: "boolean", mi.DecimalType: "decimal", mi.NoneType: "null",
             mi.AnyType: "any"}
    text = names.get(type(t), type(t).__name__)
    low, high = getattr(t, "ge", None), getattr(t, "le", None)
    if low is not None and high is not None:
        return f"{text} {low} to {high}"
    for attr, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        value = getattr(t, attr, None)
        if value is not None:
            text += f" {op} {value}"
    return text


def _default(field: mi.Field) -> str:
    if field.default_factory not in _NOTHING:
        value: Any = field.default_factory()
    elif field.default in _NOTHING:
        return "required"
    else:
        value = field.default
    if isinstance(value, msgspec.Struct):
        return "see below"
    text = json.dumps(msgspec.to_builtins(value))
    return "`" + text.replace("|", "\\|") + "`"


def _table(cls: type, head: str, name: Any, skip: tuple[str, ...] = ()) -> list[str]:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    docs = field_docs(cls)
    rows = [f"| {head} | type | default | meaning |", "| --- | --- | --- | --- |"]
    for f in info.fields:
        if f.name in skip:
            continue
        doc = docs.get(f.name, "").replace("|", "\\|")
        rows.append(f"| `{name(f.name)}` | {_type(f.type)} | {_default(f)} | {doc} |")
    return rows


def render() -> str:
    lines = [
        "# Settings reference",
        "",
        "Generated from `worker/settings.py` by `python -m worker.settings_doc --write`;",
        "do not edit by hand. `orderworker config check` prints the effective values",
        "(secrets redacted) and lists every problem. Unknown `OW_*` variables, unknown",
        "keys and out-of-range values stop the worker at start-up.",
        "",
        "## Worker (`OW_<NAME>`)",
        "",
        *_table(Settings, "variable", lambda n: f"OW_{n.upper()}", skip=("risk", "exchanges")),
        "",
        "`AMQP_URL` is read when `OW_AMQP_URL` is unset.",
        "",
        "## Risk limits (`OW_RISK_<NAME>`)",
        "",
        *_table(RiskLimits, "variable", lambda n: f"OW_RISK_{n.upper()}"),
        "",
        "## Exchanges (`OW_EXCHANGES`, `OW_EXCHANGES_FILE`)",
        "",
        "`OW_EXCHANGES` is a JSON object of exchange name (lower-case letters, digits, `_`)",
        "to the keys below; `OW_EXCHANGES_FILE` names a JSON file of the same shape",
        "(`OW_EXCHANGES` wins per name). `paper` is always configured. A non-paper",
        'exchange needs `"sandbox": true` (testnet) or `"live": true` (real money).',
        "",
        *_table(ExchangeConfig, "key", lambda n: n),
        "",
        "## Credentials",
        "",
        "Never in settings: `OW_CRED_<ACCOUNT>_<EXCHANGE>_API_KEY`, `_SECRET` and",
        "optionally `_PASSWORD` (upper-cased, other characters as `_`), or files",
        "`$OW_SECRETS_DIR/<account>/<exchange>/{api_key,secret,password}`.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m worker.settings_doc")
    p.add_argument("--write", action="store_true", help=f"write {DOC_PATH}")
    args = p.parse_args(argv)
    if missing := missing_docs():
        print("fields without a docstring: " + ", ".join(missing), file=sys.stderr)
        return 1
    if args.write:
        DOC_PATH.parent.mkdir(exist_ok=True)
        DOC_PATH.write_text(render())
    else:
        sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())

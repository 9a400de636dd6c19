"""Plain-language text for msgspec validation errors (users never see raw regexes).

    >>> explain(exc, PlaceOrder, data)
    "amount must be a decimal string like '0.01', got '-1'"

``explain`` parses msgspec's message (``Expected `int` >= 1 - at `$.shards```),
walks the target type to the failing field to name its choices, and reads the
offending value from the raw data when it is known.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from msgspec import inspect as mi

_PATTERN_HINTS = {
    r"^(0|[1-9][0-9]{0,17})(\.[0-9]{1,18})?$":
        "a decimal string like '0.01' (digits and an optional fraction, no sign)",
    r"^[A-Za-z0-9_.:\-]{1,64}$": "1 to 64 letters, digits or any of _ . : -",
    r"^[A-Za-z0-9_\-]{1,32}$": "1 to 32 letters, digits, '_' or '-'",
    r"^[a-z0-9_]{1,32}$": "1 to 32 lower-case letters, digits or '_'",
    r"^amqps?://": "a URL starting with amqp:// or amqps://",
    r"^[A-Za-z0-9_.\-]{1,64}$": "1 to 64 letters, digits or any of _ . -",
    r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}(:[A-Z0-9]{1,20})?$":
        "a unified symbol like 'BTC/USDT' (or 'BTC/USDT:USDT' for derivatives)",
}
_TYPE_WORDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
               "object": "an object", "array": "a list", "decimal": "a decimal number",
               "datetime": "a timestamp with a time zone", "null": "null"}
_AT = re.compile(r"^(?P<msg>.*?)(?: - at `(?P<path>[^`]*)`)?$", re.S)
_PATH_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+|\.\.\.)\]")


def split(exc: msgspec.ValidationError | str) -> tuple[str, list[str]]:
    """msgspec's message and the path as parts (``$.a[0].b`` -> ``["a", "0", "b"]``)."""
    m = _AT.match(str(exc))
    assert m is not None
    path = m["path"] or "$"
    return m["msg"], [a or b for a, b in _PATH_PART.findall(path)]


def _word(type_text: str) -> str:
    return " or ".join(_TYPE_WORDS.get(t.strip("` "), t.strip("` ")) for t in type_text.split("|"))


def _walk(tp: mi.Type, parts: Sequence[str]) -> mi.Type | None:
    for part in parts:
        tp = _unwrap(tp)
        members = list(tp.types) if isinstance(tp, mi.UnionType) else [tp]
        structs = [t for t in members if isinstance(t, mi.StructType)]
        if structs:
            found = [f.type for t in structs for f in t.fields if f.encode_name == part]
            if not found:
                return None
            tp = found[0]
        elif isinstance(tp, mi.DictType):
            tp = tp.value_type
        elif isinstance(tp, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
            tp = tp.item_type
        else:
            return None
    return tp


def _unwrap(tp: mi.Type) -> mi.Type:
    if isinstance(tp, mi.UnionType):
        rest = [t for t in tp.types if not isinstance(t, mi.NoneType)]
        if len(rest) == 1:
            return rest[0]
    return tp


def _field_names(tp: mi.Type | None) -> list[str]:
    tp = _unwrap(tp) if tp is not None else None
    if isinstance(tp, mi.StructType):
        return [f.encode_name for f in tp.fields]
    if isinstance(tp, mi.UnionType):
        return sorted({f.encode_name for t in tp.types if isinstance(t, mi.StructType)
                       for f in t.fields})
    return []


def _choices(tp: mi.Type | None) -> list[str]:
    tp = _unwrap(tp) if tp is not None else None
    if isinstance(tp, mi.LiteralType):
        return [str(v) for v in tp.values]
    if isinstance(tp, mi.EnumType):
        return [str(m.value) for m in tp.cls]
    return []


def _value(data: Any, parts: Sequence[str]) -> Any:
    for part in parts:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return _MISSING
    return data


_MISSING = object()


def suggest(word: str, valid: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for a close match, else empty."""
    close = difflib.get_close_matches(word, list(valid), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def explain(exc: msgspec.ValidationError | str, target: Any = None, data: Any = _MISSING,
            *, name: Callable[[list[str]], str] | None = None) -> str:
    """One sentence saying what is wrong and what would be right.

    ``target`` is the type that was decoded (for choices and field names), ``data``
    the raw input (to quote the offending value), ``name`` turns a path into the
    name the user knows (e.g. ``["shards"]`` -> ``OW_SHARDS``)."""
    msg, parts = split(exc)
    root = mi.type_info(target) if target is not None else None
    where = (name or _dotted)(parts)
    got = _value(data, parts) if data is not _MISSING else _MISSING
    got_text = "" if got is _MISSING else f", got {got!r}"
    tp = _walk(root, parts) if root is not None else None
    if m := re.fullmatch(r"Object contains unknown field `(.*)`", msg):
        field = m[1]
        inside = f" in {where}" if parts or name else ""
        valid = _field_names(tp if parts else root)
        hint = suggest(field, valid) or (f" (valid: {', '.join(valid)})" if valid else "")
        return f"unknown field {field!r}{inside}{hint}"
    if m := re.fullmatch(r"Object missing required field `(.*)`", msg):
        return f"{(name or _dotted)([*parts, m[1]])} is required"
    if m := re.fullmatch(r"Expected `(.*)` matching regex '(.*)'", msg, re.S):
        pattern = m[2].replace("\\\\", "\\")  # msgspec shows the pattern's repr
        what = _PATTERN_HINTS.get(pattern, f"{_word(m[1])} of the form {pattern}")
        return f"{where} must be {what}{got_text}"
    if m := re.fullmatch(r"Expected `([^`]*)` (of length )?([<>]=?) (\S+)", msg):
        length = "with length " if m[2] else ""
        return f"{where} must be {_word(m[1])} {length}{m[3]} {m[4]}{got_text}"
    if m := re.fullmatch(r"Expected `(.*)`, got `(.*)`", msg):
        return f"{where} must be {_word(m[1])}{got_text or f', got {_word(m[2])}'}"
    if m := re.fullmatch(r"Invalid enum value (.*)", msg):
        choices = _choices(tp)
        one_of = f"one of {', '.join(repr(c) for c in choices)}" if choices else "a known value"
        return f"{where} must be {one_of}, got {m[1]}"
    if msg.startswith("Invalid decimal"):
        return f"{where} must be a decimal number like '0.01'{got_text}"
    if msg.startswith("Invalid RFC3339") or "timezone" in msg:
        return f"{where} must be an ISO-8601 timestamp with a time zone{got_text}"
    return f"{where}: {msg}" if where and (parts or name) else msg


def explain_json(exc: msgspec.DecodeError | msgspec.ValidationError, target: Any,
                 body: bytes) -> str:
    """``explain`` for a message body that failed to decode into ``target``."""
    if not isinstance(exc, msgspec.ValidationError):
        return f"not valid JSON ({str(exc).removeprefix('JSON is malformed: ')})"
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        data = _MISSING
    return explain(exc, target, data)


def _dotted(parts: list[str]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() or p == "..." else (f".{p}" if out else p)
    return out or "input"

"""Structured JSON logs; ids from ``extra`` on every line; secrets redacted.

Redaction covers everything a line carries, in both formats: the message, the
traceback (``exc_info``, ``stack_info``), and ``extra`` fields (a field whose *name*
looks secret is masked whole)."""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

import msgspec

_STD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_SECRET_NAME = r"api[_-]?key|apikey|secret|signature|sign|password|passphrase|x-mbx-apikey"
_SECRETISH = re.compile(rf"(?i)({_SECRET_NAME}|x-bapi-api-key)"
                        r"(['\"]?\s*[:=]\s*['\"]?)([^'\"&\s,}]+)")
_SECRET_FIELD = re.compile(rf"(?i)^(?:{_SECRET_NAME}|x-bapi-api-key|x-bapi-sign|credentials?)$")


class Redactor(logging.Filter):
    """Masks known secret values and key=value pairs that look like secrets."""

    def __init__(self) -> None:
        super().__init__()
        self.values: set[str] = set()

    def add(self, *values: str) -> None:
        self.values.update(v for v in values if v and len(v) >= 6)

    def scrub(self, text: str) -> str:
        for value in self.values:
            text = text.replace(value, "**redacted**")
        return _SECRETISH.sub(r"\1\2**redacted**", text)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.scrub(record.getMessage())
        record.args = None
        for key, value in list(record.__dict__.items()):
            if key in _STD or key.startswith("_"):
                continue
            if _SECRET_FIELD.match(key):
                record.__dict__[key] = "**redacted**"
            elif isinstance(value, str):
                record.__dict__[key] = self.scrub(value)
            elif not isinstance(value, int | float | bool | None):
                record.__dict__[key] = self.scrub(str(value))
        return True


REDACTOR = Redactor()
_CONTEXT: ContextVar[dict[str, str]] = ContextVar("orderworker_log_context", default={})  # noqa: B039


def bind(**ids: str) -> None:
    """Attach ids (command_id, client_order_id, ...) to every log line of this task."""
    _CONTEXT.set({**_CONTEXT.get(), **ids})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            **_CONTEXT.get(),
        }
        for key, value in record.__dict__.items():
            if key not in _STD and not key.startswith("_"):
                simple = isinstance(value, str | int | float | bool | None)
                out[key] = value if simple else str(value)
        if record.exc_info:
            out["exc"] = REDACTOR.scrub(self.formatException(record.exc_info))
        if record.stack_info:
            out["stack"] = REDACTOR.scrub(self.formatStack(record.stack_info))
        return msgspec.json.encode(out).decode()


class PlainFormatter(logging.Formatter):
    """Text lines (``OW_LOG_JSON=false``), the traceback scrubbed like the message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return REDACTOR.scrub(super().format(record))


def setup_logging(level: str = "INFO", json: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(REDACTOR)
    handler.setFormatter(JsonFormatter() if json else PlainFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aio_pika", "aiormq", "ccxt"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))

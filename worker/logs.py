"""Structured JSON logs; ids from ``extra`` on every line; secrets redacted."""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

import msgspec

_STD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_SECRETISH = re.compile(r"(?i)(api[_-]?key|secret|signature|password|x-mbx-apikey)"
                        r"(['\"]?\s*[:=]\s*['\"]?)([^'\"&\s,}]+)")


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
        return msgspec.json.encode(out).decode()


def setup_logging(level: str = "INFO", json: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(REDACTOR)
    handler.setFormatter(JsonFormatter() if json else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aio_pika", "aiormq", "ccxt"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))

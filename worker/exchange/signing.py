"""When was a create signed, and may it still be sent? (no ccxt import: duck-typed)

ccxt signs a request after its rate-limit throttle, right before sending it, and
takes the request's ``timestamp`` there; the exchange executes it until
timestamp + recvWindow on its own clock. So the settle window after an ambiguous
create is measured from the signing, and the fence deadline is enforced there too:
a create the throttle held past the deadline is never sent.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from worker.exchange.placement import CREATE_WATCH, CreateWatch, check_send_by

_SIGNING: ContextVar[CreateWatch | None] = ContextVar("ow_signing", default=None)
"""The create whose request the client is signing in this task (reads are not watched)."""


@contextmanager
def signing_create() -> Iterator[None]:
    """Around the client's create call: its signing reports to the current CreateWatch."""
    token = _SIGNING.set(CREATE_WATCH.get())
    try:
        yield
    finally:
        _SIGNING.reset(token)


def watch_signing(client: Any) -> None:
    """Wrap ``client.sign``: for a watched create, refuse to sign past the fence deadline
    (FenceExpired, nothing sent) and record when it was signed."""
    sign = client.sign

    def watched_sign(*args: Any, **kw: Any) -> Any:
        watch = _SIGNING.get()
        if watch is None:
            return sign(*args, **kw)
        check_send_by(watch.send_by)
        request = sign(*args, **kw)
        watch.signed_at = time.monotonic()
        return request

    client.sign = watched_sign

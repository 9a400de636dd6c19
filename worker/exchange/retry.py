"""Retry policy: only transient errors, bounded attempts and total time,
exponential backoff with full jitter. Order creation never goes through it."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
)

from worker.errors import RateLimited, TransientError

T = TypeVar("T")


RetryHook = Callable[[str, BaseException], None]


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    attempts: int = 5
    max_total_s: float = 20.0
    initial_s: float = 0.2
    max_backoff_s: float = 5.0
    on_retry: RetryHook | None = None
    """Called before each retry (metrics) when the caller passes no hook of its own."""


NO_RETRY = RetryPolicy(attempts=1, max_total_s=0.0, initial_s=0.0, max_backoff_s=0.0)


def _delay(policy: RetryPolicy, attempt: int, exc: BaseException | None) -> float:
    """Full jitter: uniform(0, min(max, initial * 2^(attempt-1))), doubled after a 429."""
    delay = random.uniform(0, min(policy.max_backoff_s, policy.initial_s * 2 ** (attempt - 1)))
    if isinstance(exc, RateLimited):
        delay = min(policy.max_backoff_s, delay * 2)
    return delay


def _wait(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return _delay(policy, state.attempt_number, exc)

    return wait


async def call_with_retry(
    policy: RetryPolicy,
    operation: str,
    fn: Callable[[], Awaitable[T]],
    on_retry: RetryHook | None = None,
) -> T:
    """Run ``fn``; retry TransientError within ``policy``; re-raise the last error.

    The first attempt runs outside tenacity (the common case costs one await)."""
    on_retry = on_retry or policy.on_retry
    try:
        return await fn()
    except TransientError as exc:
        if policy.attempts <= 1:
            raise
        if on_retry is not None:
            on_retry(operation, exc)
        await asyncio.sleep(_delay(policy, 1, exc))
    policy = msgspec.structs.replace(policy, attempts=policy.attempts - 1)

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None:
            exc = state.outcome.exception()
            if exc is not None:
                on_retry(operation, exc)

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(TransientError),
        stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.max_total_s),
        wait=_wait(policy),
        before_sleep=before_sleep,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await fn()
    raise AssertionError("unreachable")  # pragma: no cover

"""Retry policy: only transient errors, bounded attempts and total time,
exponential backoff with full jitter. Order creation never goes through it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from worker.errors import RateLimited, TransientError

T = TypeVar("T")


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    attempts: int = 5
    max_total_s: float = 20.0
    initial_s: float = 0.2
    max_backoff_s: float = 5.0


NO_RETRY = RetryPolicy(attempts=1, max_total_s=0.0, initial_s=0.0, max_backoff_s=0.0)

RetryHook = Callable[[str, BaseException], None]


def _first_failure(exc: BaseException) -> RetryCallState:
    """A RetryCallState for attempt 1 that failed with ``exc`` (to reuse the wait)."""
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = 1
    state.set_exception((type(exc), exc, exc.__traceback__))
    return state


def _wait(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    base = wait_random_exponential(multiplier=policy.initial_s, max=policy.max_backoff_s)

    def wait(state: RetryCallState) -> float:
        delay = base(state)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited):
            delay = min(policy.max_backoff_s, delay * 2)  # back off harder on 429
        return delay

    return wait


async def call_with_retry(
    policy: RetryPolicy,
    operation: str,
    fn: Callable[[], Awaitable[T]],
    on_retry: RetryHook | None = None,
) -> T:
    """Run ``fn``; retry TransientError within ``policy``; re-raise the last error.

    The first attempt runs outside tenacity (the common case costs one await)."""
    try:
        return await fn()
    except TransientError as exc:
        if policy.attempts <= 1:
            raise
        if on_retry is not None:
            on_retry(operation, exc)
        await asyncio.sleep(_wait(policy)(_first_failure(exc)))
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

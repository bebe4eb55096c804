"""Retry policy for reads: exponential backoff with jitter, honouring Retry-After. Writes are never here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from bot.venue.errors import Temporary

T = TypeVar("T")

_backoff = wait_exponential_jitter(multiplier=0.1, max=5.0, jitter=0.2)


def _is_temporary(exc: BaseException) -> bool:
    return isinstance(exc, Temporary)


def _wait(state: RetryCallState) -> float:
    """Retry-After when the exchange gave one, else exponential backoff with jitter."""
    exc = state.outcome.exception() if state.outcome is not None else None
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        return float(retry_after)
    return float(_backoff(state))


async def read_with_retry(call: Callable[[], Awaitable[T]], attempts: int = 5) -> T:
    retrying: Any = AsyncRetrying(
        retry=retry_if_exception(_is_temporary), wait=_wait, stop=stop_after_attempt(attempts), reraise=True
    )
    async for attempt in retrying:
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity reraises the last error")

"""Bounded retry with capped exponential backoff, for the services' side effects.

Faust acks an event even when the agent raises, so a service never lets a
transient error escape its loop: it retries the (idempotent) operation a few
times with :func:`retry`, then dead-letters what it could not do.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def retry(
    fn: Callable[[], Awaitable[T]],
    attempts: int,
    base_delay: float = 0.05,
    max_delay: float = 2.0,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    on_error: Callable[[int, BaseException], None] | None = None,
) -> T:
    """``fn()``, tried up to ``attempts`` times; the last error propagates.

    Only exceptions in ``retry_on`` are retried (cancellation never is);
    ``on_error(attempt, exc)`` is called after each failed attempt (attempt
    counts from 1). Waits ``base_delay * 2**(attempt-1)``, at most ``max_delay``,
    of which a random half or more (jitter: workers that failed together, on a
    Redis or broker restart, do not all come back at the same instant).
    """
    for attempt in range(1, attempts + 1):
        try:
            return await fn()
        except asyncio.CancelledError:
            raise
        except retry_on as exc:
            if on_error is not None:
                on_error(attempt, exc)
            if attempt == attempts:
                raise
            delay = min(max_delay, base_delay * 2 ** (attempt - 1))
            await asyncio.sleep(random.uniform(delay / 2, delay))
    raise ValueError("attempts must be at least 1")

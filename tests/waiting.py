"""Waiting for facts, never for time.

A test that needs something to have happened waits for the fact itself — a
record on a topic, a consumer group's committed offsets, a metric, a key — with
a deadline, and fails with an assertion naming what it awaited. A fixed sleep
before an assertion is either too short on a loaded machine (a flaky test) or
too long everywhere (a slow one).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any, TypeVar

from vigie.bench.ingest import scrape

T = TypeVar("T")

STEP_S = 0.05


Said = str | Callable[[], str]


def _timed_out(timeout: float, what: Said, value: object) -> AssertionError:
    said = what if isinstance(what, str) else what()
    return AssertionError(f"not true after {timeout:g} s: {said} (last: {value!r})")


def wait_for(fact: Callable[[], T], timeout: float, what: Said, step: float = STEP_S) -> T:
    """Call ``fact`` every ``step`` seconds until it returns a truthy value, and
    return that value. Raises AssertionError naming ``what`` (a string, or a
    function giving one when it fails: the state to show) and the last value
    seen if it has not held after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = fact()
        if value:
            return value
        if time.monotonic() > deadline:
            raise _timed_out(timeout, what, value)
        time.sleep(step)


async def until(fact: Callable[[], Any], timeout: float, what: Said, step: float = STEP_S) -> Any:
    """:func:`wait_for` for coroutines: ``fact`` may be a plain or an async
    function; the event loop runs meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        value = fact()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise _timed_out(timeout, what, value)
        await asyncio.sleep(step)


def metric(port: int, name: str) -> float:
    """The sum of the samples named ``name`` on the ``/metrics`` page of the
    service on ``port`` (labels summed; 0 when absent). An unreachable service
    raises (httpx.HTTPError): a dead service never reads as a zero count."""
    return scrape(port).get(name, 0.0)


def wait_metric(port: int, name: str, at_least: float, timeout: float = 120.0) -> float:
    """Wait until the service on ``port`` reports ``name`` >= ``at_least``;
    returns the value."""
    wait_for(lambda: metric(port, name) >= at_least, timeout, f"{name} >= {at_least:g} on :{port}")
    return metric(port, name)

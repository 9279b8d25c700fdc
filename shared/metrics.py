"""Prometheus helpers shared by the services."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


def children(metric: Any) -> Callable[..., Any]:
    """``metric.labels``, memoised: each labelled child is looked up once.

    ``prometheus_client``'s ``.labels()`` validates and hashes its arguments
    under a lock on every call, a cost worth avoiding per event. Use only on
    metrics whose label values are a bounded set (agency, reason, cell...):
    the cache keeps every child it has seen.
    """
    return functools.lru_cache(maxsize=None)(metric.labels)

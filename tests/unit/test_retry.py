"""shared.retry: bounded, selective, reports each failure."""

from __future__ import annotations

import pytest

from shared.retry import retry


async def test_retries_until_success_and_reports_failures() -> None:
    calls: list[int] = []
    seen: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("down")
        return "ok"

    assert await retry(flaky, 5, base_delay=0, on_error=lambda a, e: seen.append(a)) == "ok"
    assert len(calls) == 3 and seen == [1, 2]


async def test_gives_up_after_attempts_with_the_last_error() -> None:
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError(f"try {calls}")

    with pytest.raises(ConnectionError, match="try 4"):
        await retry(down, 4, base_delay=0)
    assert calls == 4


async def test_other_errors_are_not_retried() -> None:
    calls = 0

    async def bug() -> None:
        nonlocal calls
        calls += 1
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await retry(bug, 4, base_delay=0, retry_on=(ConnectionError,))
    assert calls == 1


async def test_waits_grow_with_jitter_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def record(delay: float) -> None:
        waits.append(delay)

    monkeypatch.setattr("shared.retry.asyncio.sleep", record)

    async def down() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        await retry(down, 6, base_delay=0.1, max_delay=0.5)
    bounds = [0.1, 0.2, 0.4, 0.5, 0.5]
    assert len(waits) == len(bounds)
    assert all(b / 2 <= w <= b for w, b in zip(waits, bounds, strict=True)), waits

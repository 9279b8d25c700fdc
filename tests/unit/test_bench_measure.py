"""The benches poll a worker's /metrics sparsely mid-pass, but
as often as before (every 100 ms) before the first event and near the last."""

from __future__ import annotations

from vigie.bench.measure import POLL_MAX_S, POLL_MIN_S, cpu_seconds, next_poll


def test_polls_every_100_ms_until_the_first_event_is_seen() -> None:
    assert next_poll(None, 10.0, 0.0, 20_000) == POLL_MIN_S
    # the first event was just seen: no rate yet
    assert next_poll((10.0, 64.0, 1.0), 10.0, 64.0, 20_000) == POLL_MIN_S


def test_mid_pass_polls_are_sparse_and_the_end_is_approached_in_halves() -> None:
    first = (10.0, 0.0, 1.0)
    # 2,000 events/s, 18,000 left (9 s): at most POLL_MAX_S apart
    assert next_poll(first, 11.0, 2_000.0, 20_000) == POLL_MAX_S
    # 1,000 left (0.5 s): half of it
    assert abs(next_poll(first, 19.5, 19_000.0, 20_000) - 0.25) < 1e-9
    # 100 left (50 ms): every 100 ms, as before
    assert next_poll(first, 19.95, 19_900.0, 20_000) == POLL_MIN_S


def test_cpu_seconds_reads_this_process_and_skips_gone_ones() -> None:
    import os

    before = cpu_seconds(os.getpid())
    sum(i * i for i in range(2_000_000))  # burn some CPU
    assert cpu_seconds(os.getpid()) > before
    assert cpu_seconds(2**22 + 12345) == 0.0  # no such pid (beyond pid_max)

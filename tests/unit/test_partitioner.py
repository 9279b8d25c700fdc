"""KeyPartitioner partitions exactly as aiokafka's default, and every app produces with it."""

from __future__ import annotations

from pathlib import Path

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from shared.app import create_app
from shared.kafka import KeyPartitioner
from shared.settings import Settings


@given(
    keys=st.lists(st.binary(max_size=40), min_size=1, max_size=50),
    n=st.integers(1, 64),
)
def test_same_partition_as_the_default_for_every_key(keys: list[bytes], n: int) -> None:
    parts = list(range(n))
    mine = KeyPartitioner(size=3)  # a small memo: evictions happen
    for key in keys + keys[::-1]:  # each key twice: computed, then remembered
        assert mine(key, parts, parts) == DefaultPartitioner()(key, parts, parts)


def test_no_key_spreads_over_the_available_partitions() -> None:
    mine = KeyPartitioner()
    seen = {mine(None, [0, 1, 2, 3], [1, 3]) for _ in range(200)}
    assert seen == {1, 3}


def test_every_app_produces_with_it(tmp_path: Path) -> None:
    app, _ = create_app("parttest", Settings(data_dir=tmp_path), CollectorRegistry())
    assert isinstance(app.conf.producer_partitioner, KeyPartitioner)

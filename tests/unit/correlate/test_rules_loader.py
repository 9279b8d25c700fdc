"""Rules load strictly: errors name the file and the rule; hot reload keeps the old set."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.correlate.rules import DEFAULT_DIR
from services.correlate.rules.loader import Reloader, RuleError, load_dir
from services.correlate.rules.model import parse_duration

GOOD = """
id: cluster
title: Cluster
kind: threshold
severity: high
filter: {types: [shooting]}
group_by: [department]
count: 3
window: 7d
"""


def write(dir_: Path, name: str, text: str) -> Path:
    p = dir_ / name
    p.write_text(text)
    return p


def test_default_pack_loads_with_every_rule_of_the_plan() -> None:
    rules = load_dir(DEFAULT_DIR)
    assert {r.id for r in rules.rules} == {
        "target_deconfliction",
        "operation_deconfliction",
        "violence_near_deal_point",
        "retaliation_after_dismantling",
        "threat_escalation",
        "violence_cluster",
        "maritime_tip_to_port",
        "corruption_link",
        "laundering_link",
        "arms_and_drugs",
        "maritime_tip_unanswered",
        "operation_without_outcome",
    }
    assert len(rules.version) == 12
    assert {r.kind for r in rules.rules} == {
        "threshold",
        "distinct",
        "sequence",
        "proximity",
        "overlap",
        "absence",
    }


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (GOOD + "colour: red\n", "colour"),
        (GOOD.replace("window: 7d", "window: 7 days"), "duration"),
        (GOOD.replace("[shooting]", "[shootout]"), "filter.types"),
        (GOOD.replace("severity: high", "severity: urgent"), "severity"),
        (GOOD.replace("[department]", "[entity:spaceship]"), "spaceship"),
        (GOOD.replace("count: 3", "count: 1"), "count"),
        (GOOD + "labels: {rule: other}\n", "set by the engine"),
    ],
)
def test_a_bad_rule_names_its_file_and_rule(tmp_path: Path, change: str, needle: str) -> None:
    write(tmp_path, "bad.yaml", change)
    with pytest.raises(RuleError) as info:
        load_dir(tmp_path)
    msg = str(info.value)
    assert msg.startswith(f"{tmp_path / 'bad.yaml'}:") and "rule 'cluster'" in msg
    assert needle in msg


def test_duplicate_ids_and_bad_yaml_are_errors(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD)
    write(tmp_path, "b.yaml", GOOD)
    with pytest.raises(RuleError, match=r"already defined in a\.yaml"):
        load_dir(tmp_path)
    (tmp_path / "b.yaml").write_text("id: [unclosed")
    with pytest.raises(RuleError, match=r"b\.yaml:1:14: not valid YAML"):
        load_dir(tmp_path)


def test_durations() -> None:
    assert parse_duration("90d") == 90 * 86_400_000
    assert parse_duration("12h") == 12 * 3_600_000
    assert parse_duration("500ms") == 500
    assert parse_duration("1w") == 7 * 86_400_000  # Prometheus syntax, as everywhere
    for bad in ("0d", "1 week", "-1d", True):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_reload_swaps_on_change_and_keeps_the_old_set_on_a_bad_file(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD)
    reloader = Reloader(tmp_path)
    v1 = reloader.active.version
    assert not reloader.maybe_reload()  # nothing changed
    write(tmp_path, "b.yaml", GOOD.replace("id: cluster", "id: cluster_two"))
    assert reloader.maybe_reload()
    assert {r.id for r in reloader.active.rules} == {"cluster", "cluster_two"}
    v2 = reloader.active.version
    assert v2 != v1
    write(tmp_path, "c.yaml", GOOD.replace("id: cluster", "id: broken") + "nope: 1\n")
    assert not reloader.maybe_reload()
    assert reloader.active.version == v2
    assert reloader.last_error is not None and "c.yaml" in reloader.last_error
    (tmp_path / "c.yaml").unlink()
    assert not reloader.maybe_reload()  # back to the same content: same version
    assert reloader.last_error is None

"""The README's rule-authoring guide: every example loads, and the default pack is listed whole."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from services.correlate.rules import DEFAULT_DIR
from services.correlate.rules.loader import load_dir

README = Path(__file__).resolve().parents[2] / "README.md"


def _guide() -> str:
    text = README.read_text()
    start = text.index("## Writing correlation rules")
    return text[start : text.index("\n## ", start + 3)]


def test_every_example_is_a_valid_rule_and_every_kind_has_one(tmp_path: Path) -> None:
    examples = re.findall(r"```yaml\n(.*?)```", _guide(), flags=re.S)
    for i, body in enumerate(examples):
        (tmp_path / f"example{i}.yaml").write_text(body)
    rules = load_dir(tmp_path).rules
    assert len(rules) == len(examples)
    kinds = {yaml.safe_load(body)["kind"] for body in examples}
    assert kinds == {"threshold", "distinct", "sequence", "proximity", "overlap"}


def test_the_default_pack_table_lists_every_default_rule() -> None:
    pack = _guide().split("### The default pack", 1)[1]
    listed = set(re.findall(r"^\| `([a-z_]+)` \|", pack, flags=re.M))
    shipped = {rule.id for rule in load_dir(DEFAULT_DIR).rules}
    assert listed == shipped

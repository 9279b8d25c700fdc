"""Compare what cells received with a scenario's expectations.

:func:`running_rules` says which rule ids the correlate code in this tree
actually evaluates: the ids of the rule pack when correlate's app loads it
(its source refers to the loader), else the skeleton's single built-in rule.
Only those rules' expectations can be checked; :func:`compare` reports the
others as *unchecked*, never as passed.
"""

from __future__ import annotations

import inspect
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


def running_rules() -> set[str]:
    """Rule ids the correlate service evaluates, discovered from its code."""
    import services.correlate.app as correlate_app

    source = inspect.getsource(correlate_app)
    if "load_dir" in source or "DEFAULT_DIR" in source or "Reloader" in source:
        from services.correlate.rules import DEFAULT_DIR
        from services.correlate.rules.loader import load_dir

        ruleset: Any = load_dir(DEFAULT_DIR)
        rules = getattr(ruleset, "rules", ruleset)
        return {getattr(r, "id", str(r)) for r in rules}
    return {"target_deconfliction"}  # the walking skeleton's single built-in rule


@dataclass
class Outcome:
    """Per (cell, rule, department): how often it was expected and received."""

    checked_rules: set[str]
    missing: list[tuple[str, str, str]] = field(default_factory=list)
    extra: list[tuple[str, str, str]] = field(default_factory=list)
    duplicated: list[tuple[str, str, str]] = field(default_factory=list)
    unchecked: list[tuple[str, str, str]] = field(default_factory=list)
    matched: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.duplicated)


def received(deliveries: list[Any]) -> Counter[tuple[str, str, str]]:
    """(cell, rule, department) of every firing alert in webhook deliveries."""
    got: Counter[tuple[str, str, str]] = Counter()
    for d in deliveries:
        for a in d.body.get("alerts", []):
            if a.get("status", "firing") != "firing":
                continue
            labels = a.get("labels", {})
            got[(d.cell, labels.get("rule", ""), labels.get("department", ""))] += 1
    return got


def compare(
    expected_notifications: list[dict[str, Any]], deliveries: list[Any], rules: set[str]
) -> Outcome:
    """Exact comparison for ``rules``; anything about other rules is *unchecked*."""
    out = Outcome(rules)
    want = Counter((n["cell"], n["rule"], n["department"]) for n in expected_notifications)
    got = received(deliveries)
    for key in sorted(set(want) | set(got)):
        if key[1] not in rules:
            out.unchecked.append(key)
        elif got[key] == 0:
            out.missing.append(key)
        elif want[key] == 0:
            out.extra.append(key)
        elif got[key] > want[key]:
            out.duplicated.append(key)
        else:
            out.matched += 1
    return out

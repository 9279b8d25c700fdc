"""Inhibition: a firing source alert mutes target alerts that share the ``equal`` labels.

Alertmanager's semantics: a rule applies to a target that matches its
``target_matchers``; it is muted when some *other* firing alert matches the
``source_matchers`` and has the same values (absent = empty) for every label
in ``equal``. When the target also matches the source side, sources that
themselves match the target side are ignored (no mutual muting).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from services.notify.matchers import all_match
from services.notify.route import InhibitRule


def inhibited(
    rules: Sequence[InhibitRule],
    target_id: str,
    target: Mapping[str, str],
    firing: Mapping[str, Mapping[str, str]],
) -> str | None:
    """The id of an alert that inhibits ``target``, or ``None``.

    ``firing`` maps alert ids to the labels of every currently firing alert.
    """
    for rule in rules:
        if not all_match(rule.target, target):
            continue
        two_sided = all_match(rule.source, target)
        for sid, labels in firing.items():
            if sid == target_id or not all_match(rule.source, labels):
                continue
            if any(labels.get(k, "") != target.get(k, "") for k in rule.equal):
                continue
            if two_sided and all_match(rule.target, labels):
                continue
            return sid
    return None

"""Alert groups and their timers (pure decisions; the store edge is in ``stages``).

Alertmanager's timers: a new group is flushed ``group_wait`` after its first
alert; then every ``group_interval`` it is flushed again, and a notification
is sent when its content changed or ``repeat_interval`` passed since the last
one. A group whose alerts are all resolved and notified is deleted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from services.notify.route import Route


def group_id(route: Route, labels: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """A stable, opaque id for the alert's group on ``route``, and its group labels."""
    glabels = route.group_labels(labels)
    blob = json.dumps([route.id, route.receiver, sorted(glabels.items())], separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:24], glabels


@dataclass(frozen=True)
class Member:
    """One alert of a group, as the flush sees it."""

    alert_id: str
    status: str
    incident: int
    muted: bool = False


def content_state(members: Sequence[Member]) -> str:
    """The group's content: which alerts fire/resolved (per incident), muted ones excluded.

    Two flushes with the same state send one notification per repeat_interval.
    """
    items = sorted((m.alert_id, m.incident, m.status) for m in members if not m.muted)
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:24]


def to_notify(members: Sequence[Member]) -> list[Member]:
    """Members to put in a notification: unmuted; nothing when none fires and
    nothing resolved (an all-muted group sends nothing)."""
    return [m for m in members if not m.muted]


def finished(members: Sequence[Member]) -> bool:
    """Every alert resolved: after this flush the group can go."""
    return all(m.status == "resolved" for m in members)

"""What notify's decisions need from their store: :class:`NotifyStore`.

One method is one round trip to Redis (:class:`~services.notify.store.redis_store.RedisStore`)
or a few dict operations (:class:`~services.notify.store.memory.MemoryStore`,
for fast unit tests). Every write is idempotent or guarded (a version, a
score, a claim), so a caller retrying a batch after an error changes nothing
that was already right. Redis errors propagate as ``redis.RedisError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from services.notify.silence import Silence
from shared.models import Alert

#: (cell, alert id) -> hold time, and escalation member -> ack deadline
Held = dict[str, dict[str, float]]
Timers = dict[str, float]


class Claim(NamedTuple):
    """A notification log claim: ``key``, the claimer's clock, expiry, repeat interval."""

    key: str
    now: float
    claim_s: int
    repeat_s: float


@dataclass(slots=True)
class GroupAdd:
    """A group's updates of one batch: (alert id, member JSON) pairs, flat, in
    order; ``claims``: the notification log keys to claim if the group is new."""

    gid: str
    route: str
    labels: str
    members: list[str] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)


class Added(NamedTuple):
    """What :meth:`NotifyStore.add_to_groups` did to one group."""

    new: bool
    ver: str
    #: for a new group, each claim's answer (see :meth:`NotifyStore.claim`)
    claims: list[str]


class Due(NamedTuple):
    """What :meth:`NotifyStore.lease_due` leased, and the earliest timer left."""

    groups: list[str]
    escalations: list[str]
    first: float | None


class Silences(Protocol):
    """The cells' silences (the API creates and expires them)."""

    async def create(
        self,
        cell: str,
        matchers: list[str],
        starts_at: float,
        ends_at: float,
        comment: str,
        now: float,
    ) -> Silence: ...

    async def expire(self, cell: str, sid: str) -> bool: ...

    async def active(self, cell: str, now: float) -> list[Silence]: ...


class NotifyStore(Protocol):
    """Groups, schedules, notification log, incidents and holds of notify."""

    @property
    def silences(self) -> Silences: ...

    # incidents ------------------------------------------------------------
    async def record_incidents(
        self, alerts: Sequence[Alert], docs: Sequence[str], now: float, ttl: int
    ) -> list[int]:
        """Open/close each alert's incident, keep its last document, update the
        firing set (the last status of an alert wins); each alert's incident number."""

    async def firing_labels(self) -> dict[str, dict[str, str]]: ...
    async def incident(self, alert_id: str) -> dict[str, str]: ...
    async def update_incident(self, alert_id: str, fields: dict[str, str]) -> None: ...
    async def unfire(self, alert_id: str) -> None: ...
    async def alert_doc(self, alert_id: str) -> str | None: ...
    async def holds(self, cell: str, alert_id: str) -> bool: ...
    async def held(self, cell: str, limit: int) -> list[tuple[str, str | None, dict[str, str]]]:
        """The cell's alerts, newest first: (alert id, document, incident)."""

    async def hold(self, held: Held, timers: Timers) -> None:
        """The cells hold these alerts; start these ack timers (unless set)."""

    async def count_silences(self, cells: Sequence[str]) -> int: ...
    async def silences_of(self, cells: Sequence[str], now: float) -> dict[str, list[Silence]]: ...

    # groups ---------------------------------------------------------------
    async def add_to_groups(self, adds: Sequence[GroupAdd], ttl: int) -> list[Added]: ...
    async def read_groups(self, gids: Sequence[str]) -> list[tuple[dict[str, str], list[Any]]]:
        """Each group's meta and its members' JSON (in no order)."""

    async def delete_groups(self, drops: Sequence[tuple[str, str | None]]) -> list[bool]:
        """Delete each group (given a version: only if it is still that one)."""

    async def remove_from_groups(self, gids: Sequence[str], alert_id: str) -> None: ...

    # schedules ------------------------------------------------------------
    async def schedule(self, fresh: Timers, known: Timers) -> None:
        """Set group timers: ``fresh`` always, ``known`` only where none is set."""

    async def lease_due(self, now: float, until: float, groups: int, escalations: int) -> Due:
        """Lease up to ``groups`` due groups and ``escalations`` due escalations
        (0: that schedule is not read) until ``until``."""

    async def unschedule(self, gids: Sequence[str], lease: float, kept: Timers) -> None:
        """Unschedule groups whose timer is still ``lease``; reschedule ``kept``."""

    async def escalation_done(self, member: str) -> None: ...
    async def escalation_retry(self, member: str, at: float) -> None: ...

    # notification log -------------------------------------------------------
    def nflog_key(self, tag: str, cell: str, channel: int, entry: str) -> str: ...
    async def claim(self, claims: Sequence[Claim]) -> list[str]:
        """Claim each entry: the first try's time when claimed, else its state
        (``sent:<t>`` or ``claimed:<t>``)."""

    async def mark(self, key: str, value: str, ex: int, held: Held, timers: Timers) -> None:
        """Write one mark and holds, shared with the marks written meanwhile."""

    async def close(self) -> None: ...

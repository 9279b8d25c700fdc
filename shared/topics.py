"""The topic registry (CONTRACT: names as in the handbook).

Inbound: ``agency.<agency>.events`` for each of :data:`AGENCIES`. Internal and
outbound: :data:`EVENTS`, :data:`EVENTS_DLQ`, :data:`EVENTS_LATE`, :data:`ALERTS`,
:data:`NOTIFICATIONS`, :data:`NOTIFICATIONS_DLQ`.

A non-empty ``prefix`` (``VIGIE_TOPIC_PREFIX``) is prepended to every name; it
is empty in production and lets tests use throwaway topics on a shared broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

AGENCIES: Final = (
    "police",
    "gendarmerie",
    "douane",
    "marine",
    "justice",
    "diplomatie",
    "sgmer",
    "ofast",
)

EVENTS: Final = "vigie.events.v1"
EVENTS_DLQ: Final = "vigie.events.dlq"
EVENTS_LATE: Final = "vigie.events.late"
ALERTS: Final = "vigie.alerts.v1"
NOTIFICATIONS: Final = "vigie.notifications.v1"
NOTIFICATIONS_DLQ: Final = "vigie.notifications.dlq"


def inbound_topic(agency: str) -> str:
    """``agency.<agency>.events``; raises ``ValueError`` for an unknown agency."""
    if agency not in AGENCIES:
        raise ValueError(f"unknown agency {agency!r}")
    return f"agency.{agency}.events"


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic name, with the deployment's prefix applied."""

    prefix: str = ""

    def inbound(self, agency: str) -> str:
        return self.prefix + inbound_topic(agency)

    def agency_of(self, topic: str) -> str | None:
        """The agency an inbound topic belongs to, or ``None``."""
        if not topic.startswith(self.prefix):
            return None
        parts = topic[len(self.prefix) :].split(".")
        if len(parts) == 3 and parts[0] == "agency" and parts[2] == "events":
            return parts[1] if parts[1] in AGENCIES else None
        return None

    @property
    def all_inbound(self) -> list[str]:
        return [self.inbound(a) for a in AGENCIES]

    @property
    def events(self) -> str:
        return self.prefix + EVENTS

    @property
    def events_dlq(self) -> str:
        return self.prefix + EVENTS_DLQ

    @property
    def events_late(self) -> str:
        return self.prefix + EVENTS_LATE

    @property
    def alerts(self) -> str:
        return self.prefix + ALERTS

    @property
    def notifications(self) -> str:
        return self.prefix + NOTIFICATIONS

    @property
    def notifications_dlq(self) -> str:
        return self.prefix + NOTIFICATIONS_DLQ

    def all(self) -> list[str]:
        """Every topic Vigie reads or writes, inbound first."""
        return [
            *self.all_inbound,
            self.events,
            self.events_dlq,
            self.events_late,
            self.alerts,
            self.notifications,
            self.notifications_dlq,
        ]

"""Notify's Redis key names.

Keys updated together share a hash tag (``{g:<group>}``, ``{a:<alert>}``,
``{c:<cell>}``), so each script runs on one Redis Cluster slot. No key holds a
clear identifier: alert ids are fingerprints, group ids digests.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.redis import Keys


@dataclass(frozen=True)
class NotifyKeys:
    keys: Keys

    def group(self, gid: str, *parts: str) -> str:
        return self.keys.tagged(f"g:{gid}", *parts)

    def alert(self, alert_id: str, *parts: str) -> str:
        return self.keys.tagged(f"a:{alert_id}", *parts)

    def cell(self, cell: str, *parts: str) -> str:
        return self.keys.tagged(f"c:{cell}", *parts)

    def nflog(self, tag: str, cell: str, channel: int, entry: str) -> str:
        """A notification log entry: ``tag`` is ``g:<group>`` or ``a:<alert>``."""
        return self.keys.tagged(tag, "nflog", cell, str(channel), entry)

    @property
    def groups_due(self) -> str:
        return self.keys.tagged("sched", "groups")

    @property
    def escalations_due(self) -> str:
        return self.keys.tagged("esc", "due")

    @property
    def firing(self) -> str:
        return self.keys.tagged("active", "firing")

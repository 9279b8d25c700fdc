"""Deterministic alert ids: the same match always gets the same id."""

from __future__ import annotations

import hashlib


def fingerprint(rule: str, group_key: str, window: str) -> str:
    """A 20-hex-char id from rule id, group key and window id."""
    return hashlib.sha256(f"{rule}\x1f{group_key}\x1f{window}".encode()).hexdigest()[:20]

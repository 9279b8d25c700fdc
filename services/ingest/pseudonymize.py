"""Keyed pseudonymisation of entity values.

A token is ``<key id>:<hex of HMAC-SHA256(key, kind NUL normalised value)>``
truncated to 128 bits (32 hex digits): the same identifier from two agencies gives the same
token, nobody without the key can recompute it, and the key id lets keys rotate.
"""

from __future__ import annotations

import hashlib
import hmac


class Pseudonymizer:
    """Turns normalised identifiers into tokens with one key."""

    def __init__(self, key: bytes, key_id: str) -> None:
        if len(key) < 16:
            raise ValueError("the pseudonymisation key must be at least 16 bytes")
        self._key = key
        self.key_id = key_id

    def token(self, kind: str, value: str) -> str:
        mac = hmac.new(self._key, f"{kind}\x00{value}".encode(), hashlib.sha256).digest()
        return f"{self.key_id}:{mac[:16].hex()}"

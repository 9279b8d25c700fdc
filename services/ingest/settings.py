"""Ingest settings (prefix ``VIGIE_``), on top of the common ones."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr

from shared.settings import Settings


class IngestSettings(Settings):
    """What ingest reads from the environment.

    The pseudonymisation key comes from ``VIGIE_PSEUDO_KEY_FILE`` (a mounted
    secret, preferred) or ``VIGIE_PSEUDO_KEY``; never from the repository.
    ``VIGIE_PSEUDO_KEY_ID`` names it inside every token so keys can rotate.
    """

    pseudo_key: SecretStr | None = None
    pseudo_key_file: Path | None = None
    pseudo_key_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,16}$")] = "k1"
    #: How long (seconds) an (agency, event_id) pair is remembered for dedup.
    dedup_ttl_s: Annotated[int, Field(ge=60)] = 30 * 86400
    #: Events dated further than this in the future are refused (clock skew).
    future_tolerance_s: Annotated[int, Field(ge=0)] = 300
    #: Messages larger than this are refused unread.
    max_message_bytes: Annotated[int, Field(ge=1024)] = 256 * 1024
    #: The dead-letter topic's size cap (bytes): a dead-letter record is
    #: truncated to fit it. The worker lowers it to the topic's
    #: ``max.message.bytes`` when the broker tells it (Kafka's default
    #: 1048588); set it when the broker does not say.
    dlq_max_bytes: Annotated[int, Field(ge=1024)] = 1_000_000
    #: Messages handled together: one Redis round trip per batch.
    batch_max: Annotated[int, Field(ge=1, le=10_000)] = 500
    #: Under load, a batch lingers while messages keep arriving (it goes after
    #: 2 ms without one), at most this long (seconds) after its first message;
    #: after a quiet spell longer than this, a message goes at once. 0: never
    #: linger (batches then shrink to a few messages, costing more CPU each).
    batch_within_s: Annotated[float, Field(ge=0, le=5)] = 0.05
    #: Offsets are committed every this many events, and at least every
    #: second (outputs are published before, whatever this is).
    commit_every: Annotated[int, Field(ge=1, le=100_000)] = 100
    #: Events decided but not yet deduplicated and published (held, not acked)
    #: before the agent waits: bounds memory and what a crash re-reads.
    max_pending: Annotated[int, Field(ge=1, le=100_000)] = 5000
    #: Attempts at a Redis or producer call before the batch's events are
    #: dead-lettered with reason ``internal_error``.
    retries: Annotated[int, Field(ge=1, le=10)] = 3

    def key_bytes(self) -> bytes:
        """The HMAC key; raises ``ValueError`` with one line when none is set."""
        if self.pseudo_key_file is not None:
            data = self.pseudo_key_file.read_bytes().strip()
        elif self.pseudo_key is not None:
            data = self.pseudo_key.get_secret_value().encode()
        else:
            raise ValueError(
                "no pseudonymisation key: set VIGIE_PSEUDO_KEY_FILE (or VIGIE_PSEUDO_KEY)"
            )
        if len(data) < 16:
            raise ValueError("the pseudonymisation key must be at least 16 bytes")
        return data

"""Seeded scenario generator: realistic inbound traffic, embedded situations, expectations.

``vigie scenario generate --seed N --days D --out DIR`` writes ``events.jsonl``
(inbound v1 events), ``expected_alerts.jsonl`` and ``expected_notifications.jsonl``.
See :mod:`vigie.scenario.generate`.
"""

from vigie.scenario.generate import Scenario, generate, write

__all__ = ["Scenario", "generate", "write"]

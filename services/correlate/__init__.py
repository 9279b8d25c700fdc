"""Correlate: find in near-real time what no single agency sees.

Reads ``vigie.events.v1``, keeps windowed state in Redis, writes alerts to
``vigie.alerts.v1`` and too-late events to ``vigie.events.late``.
"""

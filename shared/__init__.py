"""Vigie's common package: settings, models, topics, Kafka/Redis plumbing, metrics.

The three services (``services.ingest``, ``services.correlate``,
``services.notify``) share code only through this package.
"""

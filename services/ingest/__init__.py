"""Ingest: validate, normalise, pseudonymise and deduplicate agency events.

Reads ``agency.<agency>.events``, writes ``vigie.events.v1`` and, for anything
refused, ``vigie.events.dlq``. Stages: :mod:`.validate`, :mod:`.normalize`,
:mod:`.pseudonymize`, :mod:`.dedup`; :mod:`.pipeline` wires them,
:mod:`.app` is the Faust edge.
"""

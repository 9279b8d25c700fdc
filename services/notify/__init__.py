"""Notify: route each alert to the coordinating cells that must act.

Reads ``vigie.alerts.v1``; delivers through the cells' channels; writes the
audit trail to ``vigie.notifications.v1`` and failures to
``vigie.notifications.dlq``.
"""

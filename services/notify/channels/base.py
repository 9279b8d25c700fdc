"""What every channel gets: one notification, already redacted for its cell."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote


def console_link(base: str, alert_id: str) -> str:
    """The console page of an alert (the console serves ``/alerts/<alert id>``)."""
    return f"{base.rstrip('/')}/alerts/{quote(alert_id, safe='')}"


def _a(alert: dict[str, Any]) -> str:
    """An HTML link to the alert's console page, if it has one."""
    url = alert.get("consoleURL")
    return f' <a href="{html.escape(url)}">console</a>' if url else ""


class DeliveryError(Exception):
    """A delivery failed; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Notification:
    """A group of alert views for one cell (see :func:`services.notify.redact.view`).

    ``kind`` is ``group`` (routing) or ``escalation``; ``notification_id`` is
    deterministic (group, content state), so a receiver can drop a repeat.
    """

    receiver: str
    group_key: str
    group_labels: dict[str, str]
    alerts: list[dict[str, Any]]
    notification_id: str
    kind: str = "group"
    extra: dict[str, Any] = field(default_factory=dict)
    #: The console's base URL (``VIGIE_CONSOLE_URL``): each alert then carries its
    #: page, ``<console_url>/alerts/<alert id>``, as ``consoleURL``, and every
    #: channel's message shows it.
    console_url: str | None = None

    def __post_init__(self) -> None:
        if self.console_url:
            for a in self.alerts:
                a["consoleURL"] = console_link(self.console_url, a["fingerprint"])

    @property
    def status(self) -> str:
        return "firing" if any(a["status"] == "firing" for a in self.alerts) else "resolved"

    def subject(self) -> str:
        n = sum(1 for a in self.alerts if a["status"] == "firing")
        first = self.alerts[0]["labels"] if self.alerts else {}
        tag = "[ESCALATION] " if self.kind == "escalation" else ""
        return (
            f"{tag}[{self.status.upper()}{':' + str(n) if n else ''}] "
            f"{first.get('rule', '')} {first.get('severity', '')} "
            f"dept {first.get('department', '-')}"
        ).strip()

    def text(self) -> str:
        lines = [self.subject(), ""]
        for a in self.alerts:
            lines.append(f"- [{a['status']}] {a['annotations'].get('summary', '')}")
            if a["annotations"].get("description"):
                lines.append(f"  {a['annotations']['description']}")
            for e in a.get("evidence", []):
                lines.append(
                    f"  evidence: {e.get('agency')} case {e.get('case_ref') or '-'}, "
                    f"contact {e.get('contact') or '-'}"
                )
            lines.append(f"  alert {a['fingerprint']} (incident {a.get('incident', 1)})")
            if a.get("consoleURL"):
                lines.append(f"  {a['consoleURL']}")
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        items = []
        for a in self.alerts:
            ev = "".join(
                f"<li>{html.escape(str(e.get('agency')))}: case "
                f"{html.escape(str(e.get('case_ref') or '-'))}, contact "
                f"{html.escape(str(e.get('contact') or '-'))}</li>"
                for e in a.get("evidence", [])
            )
            items.append(
                f"<li><b>[{html.escape(a['status'])}]</b> "
                f"{html.escape(str(a['annotations'].get('summary', '')))}"
                f"<p>{html.escape(str(a['annotations'].get('description', '')))}</p>"
                f"<ul>{ev}</ul><small>alert {html.escape(a['fingerprint'])}</small>{_a(a)}</li>"
            )
        return f"<h3>{html.escape(self.subject())}</h3><ul>{''.join(items)}</ul>"

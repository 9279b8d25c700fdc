"""The notify API's OpenAPI 3.1 document, generated from the pydantic models.

Paths are listed here (method, summary, body model, answers); every schema
comes from :func:`services.notify.console.resources.component_schemas`, so a
field added to a model is in the document at once. The fuzz test
(tests/integration/test_notify_api_fuzz.py) checks every answer against it.
"""

from __future__ import annotations

from typing import Any

from services.notify.console.resources import MAX_ID, component_schemas


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


_UNAUTHORIZED = {
    **_json("Error", "no or unknown token"),
    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
}
_NOT_MINE = _json("Error", "not an alert (or silence) of this cell")
_BAD = _json("Error", "bad body: one line naming the field")
_UNAVAILABLE = _json("Error", "state store (Redis) unavailable")


def _id_param(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_ID},
    }


def _op(
    summary: str,
    ok: tuple[str, str, str],
    *,
    body: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """One authenticated operation answering ``ok`` = (status, schema, description)."""
    responses: dict[str, Any] = {
        ok[0]: _json(ok[1], ok[2]),
        "401": _UNAUTHORIZED,
        "503": _UNAVAILABLE,
    }
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if param:
        op["parameters"] = [_id_param(param)]
        responses["404"] = _NOT_MINE
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
        responses["400"] = _BAD
        responses["413"] = _json("Error", "body too large")
    return op


def document() -> dict[str, Any]:
    """The whole document (built once at start)."""
    paths: dict[str, Any] = {
        "/api/v1/alerts": {
            "get": _op("The cell's alerts, newest first", ("200", "AlertList", "alerts"))
        },
        "/api/v1/alerts/{alert_id}": {
            "get": _op("One alert of the cell", ("200", "AlertOut", "alert"), param="alert_id")
        },
        "/api/v1/alerts/{alert_id}/ack": {
            "post": _op(
                "Acknowledge the alert's open incident (stops escalation)",
                ("200", "IncidentOut", "incident"),
                param="alert_id",
            )
        },
        "/api/v1/alerts/{alert_id}/resolve": {
            "post": _op(
                "Resolve the alert's incident by hand; firing again opens a new one",
                ("200", "IncidentOut", "incident"),
                param="alert_id",
            )
        },
        "/api/v1/silences": {
            "get": _op("The cell's active silences", ("200", "SilenceList", "silences")),
            "post": _op(
                "Create a silence (mutes this cell's notifications only)",
                ("201", "SilenceOut", "created"),
                body="SilenceIn",
            ),
        },
        "/api/v1/silence-preview": {
            "post": _op(
                "The cell's open alerts a silence with these matchers would mute",
                ("200", "SilencePreview", "alerts it would mute"),
                body="SilencePreviewIn",
            )
        },
        "/api/v1/silences/{silence_id}": {
            "delete": _op("Expire a silence", ("200", "Expired", "expired"), param="silence_id")
        },
        "/api/v1/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1"}},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Vigie notify API",
            "version": "1",
            "description": "Acknowledge, resolve and silence the alerts of one coordinating "
            "cell. Authenticate with the cell's bearer token. Times are RFC 3339; an "
            "alert's status is firing, acknowledged or resolved.",
        },
        "components": {
            "securitySchemes": {"cellToken": {"type": "http", "scheme": "bearer"}},
            "schemas": component_schemas(),
        },
        "security": [{"cellToken": []}],
        "paths": paths,
    }

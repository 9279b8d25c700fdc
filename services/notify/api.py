"""The cells' HTTP API on the notify worker's web server (same port as /metrics).

Every ``/api/v1`` route but the OpenAPI document needs ``Authorization: Bearer
<token>``; the token identifies the cell (secrets file). No or an unknown
token → 401. A cell sees and acts only on its own alerts (delivered to it, by
routing or escalation): another cell's alert → 404 (its existence is not
revealed). Silences belong to the cell that creates them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import faust
from faust.web import Request, Response, View

from services.notify.dispatch import Dispatcher

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "Vigie notify API",
        "version": "1",
        "description": "Acknowledge, resolve and silence the alerts of one coordinating "
        "cell. Authenticate with the cell's bearer token.",
    },
    "components": {
        "securitySchemes": {"cellToken": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Alert": {
                "type": "object",
                "description": "An alert as the cell may see it "
                "(Alertmanager webhook alert shape; a pointer when redacted)",
                "properties": {
                    "fingerprint": {"type": "string"},
                    "status": {"type": "string"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "annotations": {"type": "object"},
                    "evidence": {"type": "array"},
                    "redacted": {"type": "boolean"},
                    "incident": {"type": "integer"},
                    "state": {"type": "string", "enum": ["open", "resolved"]},
                    "acknowledgedBy": {"type": "string", "nullable": True},
                },
            },
            "Incident": {
                "type": "object",
                "properties": {
                    "seq": {"type": "string"},
                    "state": {"type": "string"},
                    "acked_by": {"type": "string"},
                    "resolved_by": {"type": "string"},
                },
            },
            "SilenceIn": {
                "type": "object",
                "required": ["matchers"],
                "properties": {
                    "matchers": {
                        "type": "array",
                        "items": {"type": "string"},
                        "example": ['rule="target_deconfliction"'],
                    },
                    "startsAt": {"type": "number", "description": "epoch seconds (default now)"},
                    "endsAt": {"type": "number", "description": "epoch seconds"},
                    "duration": {"type": "number", "description": "seconds, instead of endsAt"},
                    "comment": {"type": "string"},
                },
            },
            "Silence": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "cell": {"type": "string"},
                    "matchers": {"type": "array", "items": {"type": "string"}},
                    "starts_at": {"type": "number"},
                    "ends_at": {"type": "number"},
                    "comment": {"type": "string"},
                },
            },
            "Error": {"type": "object", "properties": {"error": {"type": "string"}}},
        },
    },
    "security": [{"cellToken": []}],
    "paths": {
        "/api/v1/alerts": {
            "get": {
                "summary": "The cell's alerts, newest first",
                "responses": {
                    "200": {
                        "description": "alerts",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "alerts": {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/Alert"},
                                        }
                                    },
                                }
                            }
                        },
                    },
                    "401": {"description": "no or unknown token"},
                },
            }
        },
        "/api/v1/alerts/{alert_id}/ack": {
            "post": {
                "summary": "Acknowledge the alert's open incident (stops escalation)",
                "parameters": [
                    {
                        "name": "alert_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "incident",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Incident"}
                            }
                        },
                    },
                    "401": {"description": "no or unknown token"},
                    "404": {"description": "not an alert of this cell"},
                },
            }
        },
        "/api/v1/alerts/{alert_id}/resolve": {
            "post": {
                "summary": "Resolve the alert's incident by hand; firing again opens a new one",
                "parameters": [
                    {
                        "name": "alert_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": {"description": "incident"},
                    "401": {"description": "no or unknown token"},
                    "404": {"description": "not an alert of this cell"},
                },
            }
        },
        "/api/v1/silences": {
            "get": {
                "summary": "The cell's active silences",
                "responses": {
                    "200": {"description": "silences"},
                    "401": {"description": "no token"},
                },
            },
            "post": {
                "summary": "Create a silence (mutes this cell's notifications only)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/SilenceIn"}}
                    },
                },
                "responses": {
                    "201": {
                        "description": "created",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Silence"}}
                        },
                    },
                    "400": {"description": "bad matchers or period"},
                    "401": {"description": "no or unknown token"},
                },
            },
        },
        "/api/v1/silences/{silence_id}": {
            "delete": {
                "summary": "Expire a silence",
                "parameters": [
                    {
                        "name": "silence_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": {"description": "expired"},
                    "401": {"description": "no or unknown token"},
                    "404": {"description": "no such silence for this cell"},
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "OpenAPI"}},
            }
        },
    },
}


def register(app: faust.App, dispatcher: Dispatcher, token_index: dict[str, str]) -> None:
    """Add the API views to ``app``. ``token_index`` maps sha256(token) → cell id."""

    def cell_of(request: Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        digest = hashlib.sha256(header[7:].strip().encode()).hexdigest()
        cell = token_index.get(digest)
        # a cell that a reloaded cells file removed has no API any more
        return cell if cell is not None and cell in dispatcher.cells else None

    def unauthorized(view: View) -> Response:
        return view.json(
            {"error": "unauthorized"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="vigie"'},
        )

    async def audit(kind: str, **fields: Any) -> None:
        await dispatcher.audit({"kind": kind, **fields})

    @app.page("/api/v1/openapi.json")
    class OpenApi(View):  # type: ignore[misc]
        async def get(self, request: Request) -> Response:
            return self.json(OPENAPI)

    @app.page("/api/v1/alerts")
    class Alerts(View):  # type: ignore[misc]
        async def get(self, request: Request) -> Response:
            cell = cell_of(request)
            if cell is None:
                return unauthorized(self)
            return self.json({"cell": cell, "alerts": await dispatcher.list_alerts(cell)})

    @app.page("/api/v1/alerts/{alert_id}/ack")
    class Ack(View):  # type: ignore[misc]
        async def post(self, request: Request, alert_id: str) -> Response:
            cell = cell_of(request)
            if cell is None:
                return unauthorized(self)
            inc = await dispatcher.acknowledge(cell, alert_id)
            if inc is None:
                return self.json({"error": "no such alert for this cell"}, status=404)
            return self.json(inc)

    @app.page("/api/v1/alerts/{alert_id}/resolve")
    class Resolve(View):  # type: ignore[misc]
        async def post(self, request: Request, alert_id: str) -> Response:
            cell = cell_of(request)
            if cell is None:
                return unauthorized(self)
            inc = await dispatcher.resolve(cell, alert_id)
            if inc is None:
                return self.json({"error": "no such alert for this cell"}, status=404)
            return self.json(inc)

    @app.page("/api/v1/silences")
    class Silences(View):  # type: ignore[misc]
        async def get(self, request: Request) -> Response:
            cell = cell_of(request)
            if cell is None:
                return unauthorized(self)
            active = await dispatcher.silences.active(cell, dispatcher.clock())
            return self.json({"silences": [json.loads(s.to_json()) for s in active]})

        async def post(self, request: Request) -> Response:
            cell = cell_of(request)
            if cell is None:
                return unauthorized(self)
            try:
                body = json.loads(await request.read())
                now = dispatcher.clock()
                starts = float(body.get("startsAt", now))
                ends = (
                    float(body["endsAt"]) if "endsAt" in body else starts + float(body["duration"])
                )
                silence = await dispatcher.silences.create(
                    cell,
                    [str(m) for m in body["matchers"]],
                    starts,
                    ends,
                    str(body.get("comment", "")),
                    now,
                )
            except (ValueError, KeyError, TypeError) as exc:
                return self.json({"error": f"bad silence: {exc}"}, status=400)
            dispatcher.invalidate_silences(cell)
            await audit(
                "silence",
                action="create",
                cell=cell,
                silence_id=silence.id,
                ends_at=silence.ends_at,
            )
            return self.json(json.loads(silence.to_json()), status=201)

    @app.page("/api/v1/silences/{silence_id}")
    class Silence(View):  # type: ignore[misc]
        async def delete(self, request: Request, silence_id: str) -> Response:
            cell = cell_of(request)
            if cell is None:
                return unauthorized(self)
            if not await dispatcher.silences.expire(cell, silence_id):
                return self.json({"error": "no such silence for this cell"}, status=404)
            dispatcher.invalidate_silences(cell)
            await audit("silence", action="expire", cell=cell, silence_id=silence_id)
            return self.json({"expired": silence_id})

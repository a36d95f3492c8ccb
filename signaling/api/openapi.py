"""The OpenAPI 3.1 document of the REST API; request schemas come from the msgspec models the
handlers decode with, so the document and the validation cannot drift apart."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

import msgspec

from signaling.api.auth import EndpointLogin, LinkRequest, OperatorLogin
from signaling.api.directory import SelectRequest
from signaling.api.meetings import MeetingPatch
from signaling.api.operators import OperatorRequest
from signaling.api.recordings import RecordingAction, StreamingAction, openapi_paths as recording_paths
from signaling.api.cluster import openapi_paths as cluster_paths
from signaling.meetings.model import MeetingSpec
from signaling.protocol import CLIENT_TYPES

REF = "#/components/schemas/"
BODIES = [
    OperatorLogin,
    EndpointLogin,
    LinkRequest,
    SelectRequest,
    MeetingSpec,
    MeetingPatch,
    OperatorRequest,
    RecordingAction,
    StreamingAction,
]


def _body(model: type) -> dict:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": REF + model.__name__}}}}


def _ok(description: str, status: str = "200") -> dict:
    return {status: {"description": description, "content": {"application/json": {"schema": {"type": "object"}}}}}


ERRORS = {
    s: {"$ref": f"#/components/responses/{n}"}
    for s, n in (
        ("400", "BadRequest"),
        ("401", "Unauthorized"),
        ("403", "Forbidden"),
        ("404", "NotFound"),
        ("408", "Timeout"),
        ("409", "Conflict"),
        ("413", "TooLarge"),
        ("429", "TooMany"),
    )
}


QUERY_SCHEMAS = {
    "from": {"type": "string", "format": "date-time"},
    "to": {"type": "string", "format": "date-time"},
    "active": {"type": "boolean"},
    "view": {"type": "string", "enum": ["speaker", "composite"]},
    "date": {"type": "string", "format": "date"},
}


def _parameters(params: Sequence[str] = (), query: Sequence[str] = ()) -> list[dict]:
    """Path parameters (required strings) and optional query parameters."""
    return [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params] + [
        {"name": q, "in": "query", "required": False, "schema": QUERY_SCHEMAS.get(q, {"type": "string"})} for q in query
    ]


def _op(
    summary: str,
    tag: str,
    ok: dict,
    body: type | None = None,
    auth: bool = True,
    params: list[str] = (),
    query: list[str] = (),
) -> dict:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": {**ok, **ERRORS}}
    if body is not None:
        op["requestBody"] = _body(body)
    if not auth:
        op["security"] = []
    parameters = _parameters(params, query)
    if parameters:
        op["parameters"] = parameters
    return op


def _html(summary: str, params: list[str] = (), query: list[str] = (), media=("text/html",)) -> dict:
    """A public page or asset of the browser UI (not JSON)."""
    op = {
        "summary": summary,
        "tags": ["web"],
        "security": [],
        "responses": {
            "200": {"description": summary, "content": {t: {"schema": {"type": "string"}} for t in media}},
            "404": {"$ref": "#/components/responses/NotFound"},
        },
    }
    parameters = _parameters(params, query)
    if parameters:
        op["parameters"] = parameters
    return {"get": op}


def _sdp_exchange(summary: str, query: list[str] = ()) -> dict:
    sdp = {"application/sdp": {"schema": {"type": "string"}}}
    return {
        "post": {
            "summary": summary,
            "tags": ["media"],
            "parameters": _parameters(["meeting_id"], query),
            "requestBody": {"required": True, "content": sdp},
            "responses": {
                "201": {
                    "description": "SDP answer; Location names the session resource",
                    "headers": {"Location": {"schema": {"type": "string"}}},
                    "content": sdp,
                },
                "415": {"$ref": "#/components/responses/BadRequest"},
                "503": {"$ref": "#/components/responses/BadRequest"},
                **ERRORS,
            },
        }
    }


def _sdp_resource(summary: str) -> dict:
    path = _parameters(["meeting_id", "resource_id"])
    fragment = {"application/trickle-ice-sdpfrag": {"schema": {"type": "string"}}}
    return {
        "delete": {
            "summary": summary,
            "tags": ["media"],
            "parameters": path,
            "responses": {"200": {"description": "session ended"}, **ERRORS},
        },
        "patch": {
            "summary": "Trickle ICE (RFC 9725 section 4.3): candidates and end-of-candidates as an SDP fragment",
            "tags": ["media"],
            "parameters": path
            + [{"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"}}],
            "requestBody": {"required": True, "content": fragment},
            "responses": {
                "204": {"description": "candidates given to the session's peer"},
                "412": {"$ref": "#/components/responses/BadRequest"},
                "415": {"$ref": "#/components/responses/BadRequest"},
                "422": {"$ref": "#/components/responses/BadRequest"},
                **ERRORS,
            },
        },
    }


def _paths() -> dict:
    return _core_paths() | recording_paths(_op, _ok) | cluster_paths(_op, _ok)


def _core_paths() -> dict:
    m, occ = ["meeting_id"], ["meeting_id", "occurrence_id"]
    return {
        "/healthz": {"get": _op("Liveness and store health", "ops", _ok("healthy"), auth=False)},
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text format)",
                "tags": ["ops"],
                "security": [],
                "responses": {
                    "200": {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}
                },
            }
        },
        "/api/openapi.json": {"get": _op("This document", "ops", _ok("OpenAPI document"), auth=False)},
        "/ws": {
            "get": {
                "summary": "WebSocket signaling, protocol v1; first message hello{token}. Client types: "
                + ", ".join(CLIENT_TYPES),
                "tags": ["signaling"],
                "security": [],
                "responses": {
                    "101": {"description": "switching protocols"},
                    "400": {"description": "not a WebSocket upgrade request"},
                },
            }
        },
        "/api/v1/auth/login": {"post": _op("Operator login", "auth", _ok("token"), OperatorLogin, auth=False)},
        "/api/v1/auth/endpoint": {
            "post": _op("Room terminal login with its endpoint secret", "auth", _ok("token"), EndpointLogin, auth=False)
        },
        "/api/v1/endpoints/{endpoint_id}/credentials": {
            "post": _op(
                "Issue or rotate an endpoint secret (operator)", "auth", _ok("secret", "201"), params=["endpoint_id"]
            )
        },
        "/api/v1/operators": {
            "get": _op("Operator accounts (operator)", "auth", _ok("operators")),
            "post": _op("Add an operator (operator)", "auth", _ok("created", "201"), OperatorRequest),
        },
        "/api/v1/operators/{username}": {
            "delete": _op("Delete an operator (operator)", "auth", _ok("deleted"), params=["username"])
        },
        "/api/v1/audit": {"get": _op("Audit trail of one day (operator)", "auth", _ok("entries"), query=["date"])},
        "/api/v1/me": {"get": _op("The caller's identity", "auth", _ok("identity"))},
        "/api/v1/presence": {"get": _op("Endpoints online now (operator)", "auth", _ok("presence"))},
        "/api/v1/directory": {
            "get": _op(
                "The endpoint directory: all of it for operators, its subtree for an endpoint, none for a guest link (403)",
                "directory",
                _ok("directory"),
            )
        },
        "/api/v1/directory/endpoints/{endpoint_id}": {
            "get": _op("One endpoint", "directory", _ok("endpoint"), params=["endpoint_id"])
        },
        "/api/v1/directory/select": {
            "post": _op("Resolve selectors to endpoint ids", "directory", _ok("ids"), SelectRequest)
        },
        "/api/v1/meetings": {
            "get": _op("List meetings", "meetings", _ok("meetings"), query=["active"]),
            "post": _op("Schedule a meeting (operator)", "meetings", _ok("created", "201"), MeetingSpec),
        },
        "/api/v1/meetings/{meeting_id}": {
            "get": _op("One meeting", "meetings", _ok("meeting"), params=m),
            "patch": _op("Change a meeting (operator)", "meetings", _ok("updated"), MeetingPatch, params=m),
            "delete": _op("Cancel a meeting series (operator)", "meetings", _ok("cancelled"), params=m),
        },
        "/api/v1/meetings/{meeting_id}/occurrences": {
            "get": _op("Occurrences in a window", "meetings", _ok("occurrences"), params=m, query=["from", "to"])
        },
        "/api/v1/meetings/{meeting_id}/occurrences/{occurrence_id}": {
            "delete": _op("Cancel one occurrence (operator)", "meetings", _ok("cancelled"), params=occ)
        },
        "/api/v1/meetings/{meeting_id}/occurrences/{occurrence_id}/attendance": {
            "get": _op("Attendance record (operator)", "meetings", _ok("attendance"), params=occ)
        },
        "/api/v1/meetings/{meeting_id}/live": {
            "get": _op("Who is in the open occurrence, floor, hands (operator)", "meetings", _ok("live"), params=m)
        },
        "/api/v1/meetings/{meeting_id}/links": {
            "post": _op(
                "Signed join link for a laptop (operator)", "meetings", _ok("link", "201"), LinkRequest, params=m
            ),
            "delete": _op(
                "Revoke every join link of the meeting issued so far and end their sessions (operator)",
                "meetings",
                _ok("revoked"),
                params=m,
            ),
        },
        "/api/v1/meetings/{meeting_id}/sip": {
            "get": _op(
                "Invited SIP room systems, in call or not (operator, chair)", "meetings", _ok("room systems"), params=m
            )
        },
        "/api/v1/meetings/{meeting_id}/sip/{endpoint_id}": {
            "post": _op(
                "Call a SIP room system into the open meeting now, again after failures (operator, chair)",
                "meetings",
                _ok("calling", "202"),
                params=["meeting_id", "endpoint_id"],
            ),
            "delete": _op(
                "Hang up a SIP room system and stop calling it this occurrence (operator, chair)",
                "meetings",
                _ok("hung up", "202"),
                params=["meeting_id", "endpoint_id"],
            ),
        },
        "/api/v1/me/meetings": {
            "get": _op("Meetings the calling endpoint is invited to, next 7 days", "meetings", _ok("meetings"))
        },
        "/whip/{meeting_id}": _sdp_exchange("WHIP ingest (RFC 9725): publish into an open meeting"),
        "/whip/{meeting_id}/{resource_id}": _sdp_resource("End a WHIP session"),
        "/whep/{meeting_id}": _sdp_exchange(
            "WHEP egress: watch an open meeting (floor holder / active speaker; "
            "?view=composite: the composite picture and mixed sound)",
            query=["view"],
        ),
        "/whep/{meeting_id}/{resource_id}": _sdp_resource("End a WHEP session"),
        "/join": _html("Laptop join page for a signed join link", query=["token"]),
        "/console": _html("Operator console: meetings, schedule, live map, chair controls"),
        "/web/{name}": _html(
            "Static asset of the web pages (ES module, stylesheet, icon)",
            ["name"],
            media=("text/javascript", "text/css", "image/svg+xml"),
        ),
    }


def _error_response(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": REF + "Error"}}}}


@lru_cache(maxsize=4)
def openapi_document(server_url: str) -> dict:
    _, components = msgspec.json.schema_components(BODIES, ref_template=REF + "{name}")
    components["MeetingPatch"]["minProperties"] = 1
    components["Error"] = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "field": {"type": "string"},
                    # with code "busy" (503, and the Retry-After header): seconds before trying again
                    "retry_after": {"type": "integer", "minimum": 1},
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "giaoban API",
            "version": "1.0.0",
            "description": "4-tier online briefings: directory, meetings, auth. Errors are {error:{code,message}}.",
        },
        "servers": [{"url": server_url}],
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "gb1 token"}},
            "responses": {
                "BadRequest": _error_response("invalid input; nothing was changed"),
                "Unauthorized": _error_response("missing, wrong or expired token"),
                "Forbidden": _error_response("not allowed for this role or meeting"),
                "NotFound": _error_response("no such object"),
                "Conflict": _error_response("changed meanwhile, already exists, or not possible in this state"),
                "Timeout": _error_response("the request body did not arrive within limits.http_body_timeout_s"),
                "TooLarge": _error_response("the request body is larger than its limit"),
                "TooMany": _error_response(
                    "too many requests, failed logins, sessions or connections from one address; wait"
                ),
            },
        },
    }

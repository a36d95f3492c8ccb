"""REST: operator accounts (province IT staff). Operators manage operators; 'admin' cannot be deleted."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

import msgspec
from aiohttp import web

from signaling.auth.audit import VN
from signaling.errors import bad_request, conflict, not_found
from signaling.api.http import ctx_of, json_response, read_body, require_operator
from signaling.meetings.validation import CONTROL

routes = web.RouteTableDef()
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")


class OperatorRequest(msgspec.Struct, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(min_length=2, max_length=32, extra_json_schema={"pattern": USERNAME.pattern})]
    password: Annotated[str, msgspec.Meta(min_length=10, max_length=200)]
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=120)] | None = None


def _check_username(username: str) -> None:
    # fullmatch: re.match with '$' lets a trailing line break through
    if not USERNAME.fullmatch(username):
        raise bad_request(
            f"username {username[:40]!r}: 2-32 characters from a-z, 0-9, '.', '_' and '-', "
            f"starting with a letter or digit",
            "username",
        )


@routes.get("/api/v1/operators")
async def list_operators(request: web.Request) -> web.Response:
    require_operator(request)
    rows = await ctx_of(request).store.list("operators")
    return json_response({"operators": [{"username": key, "name": doc.get("name", key)} for key, doc in rows]})


@routes.post("/api/v1/operators")
async def add_operator(request: web.Request) -> web.Response:
    require_operator(request)
    body = await read_body(request, OperatorRequest)
    _check_username(body.username)
    if body.name is not None and CONTROL.search(body.name):
        raise bad_request(
            "name contains a control character (such as NUL or a line break); give one line of text", "name"
        )
    ctx = ctx_of(request)
    if await ctx.store.get("operators", body.username) is not None:
        raise conflict(f"operator {body.username!r} exists; delete it first to reset its password")
    await ctx.auth.set_operator(body.username, body.password, body.name or body.username)
    return json_response({"username": body.username, "name": body.name or body.username}, 201)


@routes.delete("/api/v1/operators/{username}")
async def delete_operator(request: web.Request) -> web.Response:
    me = require_operator(request)
    username = request.match_info["username"]
    _check_username(username)  # a NUL cannot even be looked up: say what is wrong instead of failing
    if username in ("admin", me.id):
        raise bad_request(
            f"operator {username!r} cannot be deleted ({'the first operator' if username == 'admin' else 'yourself'})"
        )
    ctx = ctx_of(request)
    if not await ctx.store.delete("operators", username):
        raise not_found(f"no operator {username!r}")
    await ctx.sessions.publish_revocation(await ctx.auth.revoke("operator", username))
    return json_response({"deleted": username})


@routes.get("/api/v1/audit")
async def audit_log(request: web.Request) -> web.Response:
    """One day of the audit trail (Vietnam date, default today)."""
    require_operator(request)
    day = request.query.get("date") or datetime.now(VN).strftime("%Y-%m-%d")
    try:
        datetime.strptime(day, "%Y-%m-%d")
    except ValueError:
        raise bad_request(f"date must be YYYY-MM-DD, got {day!r}", "date") from None
    entries = await ctx_of(request).store.read_log(f"audit:{day}")
    return json_response({"date": day, "entries": entries})

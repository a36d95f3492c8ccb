"""HTTP plumbing shared by the REST routes: error middleware, JSON bodies, auth helpers.

One layer above ``signaling.context`` (the layers are listed there): the routes and the cluster
API import it; it imports no route and nothing of ``signaling.ws``.
"""

from __future__ import annotations

import logging
import time
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from signaling import metrics
from signaling.auth import audit
from signaling.auth.authenticator import Identity
from signaling.guard.connection_limits import read_bounded
from signaling.context import Context
from signaling.errors import ApiError, bad_request, classify

log = logging.getLogger("giaoban.http")
T = TypeVar("T")
CTX = web.AppKey("ctx", Context)
IDENTITY = web.RequestKey("identity", Identity)


def ctx_of(request: web.Request) -> Context:
    return request.app[CTX]


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(data), status=status, content_type="application/json")


def error_response(err: ApiError) -> web.Response:
    resp = json_response({"error": err.to_dict()}, err.status)
    if err.close:
        resp.force_close()
    if err.status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="giaoban"'
    if err.retry_after is not None:
        resp.headers["Retry-After"] = str(err.retry_after)
    return resp


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    started = time.perf_counter()
    try:
        resp = await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            code = {404: "not_found", 405: "method_not_allowed", 408: "timeout", 413: "too_large"}.get(
                exc.status, "http_error"
            )
            resp = error_response(ApiError(code, f"{exc.reason}: {request.method} {request.path}", exc.status))
            if "Allow" in exc.headers:  # RFC 9110: a 405 lists the methods that are allowed
                resp.headers["Allow"] = exc.headers["Allow"]
        else:
            raise
    except Exception as exc:
        err = classify(exc)
        if err is None:
            log.exception("request failed", extra={"route": route, "method": request.method})
            err = ApiError("internal", "internal error; see the server log", 500)
        if err.status == 401:
            metrics.AUTH_FAILURES.labels("http").inc()
        resp = error_response(err)
    if request.method in ("POST", "PATCH", "DELETE") and resp.status < 300 and route not in UNAUDITED:
        await _audit(request, route)
    _skip_unread_encoded_body(request, resp)
    metrics.HTTP_REQUESTS.labels(route, str(resp.status)).inc()
    metrics.HTTP_LATENCY.labels(route).observe(time.perf_counter() - started)
    return resp


def _skip_unread_encoded_body(request: web.Request, resp: web.StreamResponse) -> None:
    """A compressed body the route never read (refused before reading, or a route without one):
    aiohttp would read it after the answer to reuse the connection, fail to decode garbage and
    log a traceback. Close the connection after the answer instead; nothing else needs it."""
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity") and request.body_exists and not request.content.is_eof():
        request.content.feed_eof()
        resp.force_close()


UNAUDITED = {"/api/v1/auth/login", "/api/v1/auth/endpoint", "/api/v1/directory/select"}  # not changes


async def _audit(request: web.Request, route: str) -> None:
    try:
        who = identity(request)
    except ApiError:
        return
    await audit.record(ctx_of(request).store, who, f"{request.method} {route}", request.path)


async def read_raw(request: web.Request, limit: int | None = None) -> bytes:
    """The whole body within ``limit`` (default limits.http_max_body_bytes) and
    limits.http_body_timeout_s: 413 / 408 otherwise."""
    limits = ctx_of(request).settings.limits
    return await read_bounded(request, limit or limits.http_max_body_bytes, limits.http_body_timeout_s)


async def read_body(request: web.Request, model: type[T]) -> T:
    """Decode a JSON body strictly into ``model``; errors name the field that was wrong."""
    ctype = request.headers.get("Content-Type", "application/json")
    if "json" not in ctype:
        raise ApiError("unsupported_media_type", f"expected Content-Type application/json, got {ctype}", 415)
    raw = await read_raw(request)
    if not raw:
        raise bad_request("request body is empty; expected a JSON object")
    try:
        return msgspec.json.decode(raw, type=model)
    except RecursionError:  # a value typed Any/dict nested thousands deep
        raise bad_request("request body is nested too deeply") from None


def identity(request: web.Request) -> Identity:
    """The caller, verified once per request (the handler and the audit trail both ask)."""
    if IDENTITY not in request:
        request[IDENTITY] = ctx_of(request).auth.from_request(request)
    return request[IDENTITY]


def require_operator(request: web.Request) -> Identity:
    ident = identity(request)
    if ident.kind != "operator":
        raise ApiError("forbidden", f"this needs an operator login; {ident.name} is a {ident.kind}", 403)
    return ident

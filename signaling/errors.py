"""The few error types a user can cause, mapped to HTTP status and WebSocket close codes here only.

Domain modules raise their own exceptions (DirectoryError, SelectorError, MeetingError, ...);
``classify`` turns any of them into one ``ApiError`` so REST and WebSocket answer alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from endpoints.directory import DirectoryError, UnknownEndpointError
from endpoints.selectors import SelectorError
from mcu.api import MediaConflict, MediaError, MediaRetry, MediaUnavailable
from signaling.meetings.errors import ConflictError, MeetingError, NotFoundError
from signaling.store.base import StoreBusy


@dataclass
class ApiError(Exception):
    code: str  # stable machine-readable code, e.g. "bad_request", "forbidden"
    message: str  # one sentence for a person, naming what was wrong
    status: int = 400
    field: str | None = None
    close: bool = False  # HTTP: close the connection after the answer (the request cannot be read on)
    retry_after: int | None = None  # "busy": seconds to wait before the same request (HTTP Retry-After)

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict:
        body: dict = {"code": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        if self.retry_after is not None:
            body["retry_after"] = self.retry_after
        return body


def bad_request(message: str, field: str | None = None) -> ApiError:
    return ApiError("bad_request", message, 400, field)


def unauthorized(message: str) -> ApiError:
    return ApiError("unauthorized", message, 401)


def forbidden(message: str) -> ApiError:
    return ApiError("forbidden", message, 403)


def not_found(message: str) -> ApiError:
    return ApiError("not_found", message, 404)


def conflict(message: str) -> ApiError:
    return ApiError("conflict", message, 409)


def timed_out(message: str) -> ApiError:
    return ApiError("timeout", message, 408)


def unreadable_body(message: str) -> ApiError:
    """400, and the connection closes after it: the rest of the request cannot be parsed."""
    return ApiError("bad_request", message, 400, close=True)


def too_large(message: str) -> ApiError:
    return ApiError("too_large", message, 413)


def rate_limited(message: str) -> ApiError:
    return ApiError("rate_limited", message, 429)


def too_many_sessions(message: str) -> ApiError:
    return ApiError("too_many_sessions", message, 429)


def unavailable(message: str) -> ApiError:
    return ApiError("unavailable", message, 503)


def busy(message: str) -> ApiError:
    return ApiError("busy", message, 503)


def busy_retry(after_s: int) -> ApiError:
    """503 "busy" with when to try again (the store had no free connection in time, #18)."""
    return ApiError(
        "busy",
        f"Máy chủ đang bận, xin thử lại sau {after_s} giây. Server busy: retry in {after_s} s.",
        503,
        retry_after=after_s,
    )


def classify(exc: BaseException) -> ApiError | None:
    """The ApiError for an exception a user can cause; None for a server fault."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, StoreBusy):  # overload, not a fault: the same request works a little later
        return busy_retry(exc.retry_after_s)
    if isinstance(exc, MediaRetry):
        return ApiError("retry", f"media busy: {exc}; answer the server's offer first, then retry", 409)
    if isinstance(exc, MediaUnavailable):  # recording not enabled, no media for the meeting here
        return unavailable(str(exc))
    if isinstance(exc, MediaConflict):  # already (not) recording or streaming
        return conflict(str(exc))
    if isinstance(exc, MediaError):
        return bad_request(f"media: {exc}")
    if isinstance(exc, msgspec.ValidationError):
        return bad_request(f"invalid request: {exc}")
    if isinstance(exc, msgspec.DecodeError):
        return bad_request(f"malformed JSON: {exc}")
    if isinstance(exc, MeetingError):
        return bad_request(str(exc), getattr(exc, "field", None))
    if isinstance(exc, (SelectorError, DirectoryError)):
        return bad_request(str(exc))
    if isinstance(exc, (UnknownEndpointError, NotFoundError)):
        return not_found(str(exc).strip("'\""))
    if isinstance(exc, ConflictError):
        return conflict(str(exc))
    return None


def offer_error(exc: BaseException) -> ApiError | None:
    """``classify`` for an error on a client's SDP offer, so a client knows whether to offer again:
    "retry" (409) for an offer that crossed the server's own or met a busy peer (answer the
    server's offer, then offer again), "offer_refused" (400) for an offer the node cannot serve,
    with the reason in words (the same offer again would be refused again)."""
    api = classify(exc)
    if api is None or api.code != "bad_request":
        return api
    reason = str(exc) if isinstance(exc, MediaError) else api.message  # without classify's "media: "
    return ApiError("offer_refused", reason, 400, api.field)


# WebSocket close codes (4000-4999 are for applications, RFC 6455 section 7.4.2).
WS_CLOSE = {
    "unauthorized": 4401,
    "forbidden": 4403,
    "rate_limited": 4429,
    "too_large": 1009,
    "protocol": 4400,
    "policy": 1008,  # a message refused outright (JSON nested past limits.ws_max_json_depth)
    "replaced": 4409,
    "shutdown": 1001,
}

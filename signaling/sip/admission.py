"""Who a SIP call is from and which meeting it is for (#14): the gateway's admission rules.

The request-URI's user names the meeting:
  * digits: a meeting's ``dial_number`` (``MeetingService.by_dial_number``);
  * an endpoint id of the directory: that endpoint's meeting open now that invites it (a room
    system keeps one address-book entry, its own id, for every briefing).
Anything else is 404.

Who calls (the rule, decided here): the caller CLAIMS an endpoint by its From URI (user and host
equal to the endpoint's ``sip.uri``, port and parameters ignored) or, when it dials an endpoint
id, by that id. The claim is PROVED by every check the endpoint's ``sip`` block sets:
  * ``allowed_sources``: the packet's source address lies in one of them (else 403);
  * ``auth_user``: digest authentication with that user (401 challenge, then 403 if wrong).
A claim with neither set proves nothing (a From header is free text): such a caller is an unknown
caller. A proved endpoint is admitted like a terminal (signaling.auth.policy.admit: invited, not
removed, meeting open). An unknown caller may only dial a meeting number whose meeting has a PIN:
the gateway answers and collects the PIN by DTMF (gateway.py); without a PIN it is 403.

Refusals carry an English reason phrase (SIP reason phrases are ASCII by convention and room
systems show them raw) and a Warning header (RFC 3261 20.43, code 399) with the Vietnamese text
first and the English after it; UTF-8 is allowed in its quoted string.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from endpoints.directory import Directory
from endpoints.model import Endpoint
from endpoints.sip_yaml import SIP_URI
from signaling.auth.authenticator import Identity
from signaling.errors import ApiError
from signaling.meetings.errors import MeetingError, NotFoundError
from signaling.meetings.model import Meeting
from signaling.meetings.service import MeetingService
from signaling.sip.refusals import Refusal, refusal

DIAL_NUMBER = re.compile(r"[0-9]{1,20}", re.ASCII)
_ANGLE = re.compile(r"<([^>]*)>")


# ApiError status -> SIP final response (the one mapping of REST errors to SIP)
_SIP_OF_HTTP = {
    403: (403, "Forbidden"),
    404: (404, "Not Found"),
    429: (486, "Busy Here"),
    503: (503, "Service Unavailable"),
}


def from_api_error(exc: ApiError) -> Refusal:
    code, reason = _SIP_OF_HTTP.get(exc.status, (403, "Forbidden"))
    return Refusal(code, reason, exc.message)


@dataclass(frozen=True)
class SipAddress:
    user: str
    host: str

    @classmethod
    def parse(cls, text: str) -> SipAddress | None:
        """``sip:user@host[:port][;params]``, bare or inside a header value's angle brackets."""
        match = _ANGLE.search(text or "")
        uri = (match.group(1) if match else (text or "")).strip()
        parsed = SIP_URI.match(uri)
        if parsed is None:
            return None
        return cls(parsed["user"] or "", parsed["host"].lower())


@dataclass(frozen=True)
class Target:
    """The meeting a call is for; ``endpoint``: the endpoint id it dialled, if it dialled one."""

    meeting: Meeting
    endpoint: Endpoint | None = None


async def find_target(meetings: MeetingService, directory: Directory, user: str, now: datetime | None = None) -> Target:
    """The meeting the request-URI's user names; Refusal 404 / 480 otherwise."""
    if DIAL_NUMBER.fullmatch(user or ""):
        try:
            return Target(await meetings.by_dial_number(user))
        except (NotFoundError, MeetingError):
            raise refusal(
                404, "Not Found", f"Không có cuộc họp số {user}", f"no meeting has dial number {user}"
            ) from None
    if user and user in directory:
        endpoint = directory.get(user)
        meeting = await _open_meeting_of(meetings, endpoint.id, now or datetime.now(timezone.utc))
        if meeting is None:
            raise not_open(f"điểm cầu {endpoint.id}", f"no meeting inviting endpoint {endpoint.id} is open now")
        return Target(meeting, endpoint)
    shown = (user or "")[:40]
    raise refusal(
        404, "Not Found", f"Không có số quay hay điểm cầu {shown!r}", f"{shown!r} is no dial number or endpoint id"
    )


async def _open_meeting_of(meetings: MeetingService, endpoint_id: str, now: datetime) -> Meeting | None:
    """The meeting open now that invites the endpoint (the earliest started if several are)."""
    found: list[tuple[datetime, Meeting]] = []
    for meeting in await meetings.list(active_only=True):
        if meetings.is_invited(meeting, endpoint_id):
            occurrence = await meetings.current_occurrence(meeting.id, now)
            if occurrence is not None:
                found.append((occurrence.starts_at, meeting))
    return min(found, key=lambda pair: pair[0])[1] if found else None


def not_open(what_vi: str, what_en: str) -> Refusal:
    return refusal(480, "Temporarily Unavailable", f"Cuộc họp của {what_vi} chưa mở", what_en)


@dataclass(frozen=True)
class Claim:
    """The endpoint a caller says it is, and what must prove it."""

    endpoint: Endpoint
    source_ok: bool  # its allowed_sources hold the caller's address (True when it lists none)

    @property
    def auth_user(self) -> str | None:
        return self.endpoint.sip.auth_user if self.endpoint.sip else None

    @property
    def provable(self) -> bool:
        """A claim counts only when the sip block sets a source list or a digest user."""
        sip = self.endpoint.sip
        return sip is not None and (bool(sip.allowed_sources) or sip.auth_user is not None)


def claim_of(directory: Directory, from_uri: str, source_ip: str, target: Target) -> Claim | None:
    """The endpoint the caller claims: by its From URI, else the endpoint id it dialled."""
    sender = SipAddress.parse(from_uri)
    endpoint = _by_uri(directory, sender) if sender else None
    if endpoint is None and target.endpoint is not None and target.endpoint.sip is not None:
        endpoint = target.endpoint
    if endpoint is None or endpoint.sip is None:
        return None
    return Claim(endpoint, source_allowed(endpoint.sip.allowed_sources, source_ip))


def _by_uri(directory: Directory, sender: SipAddress) -> Endpoint | None:
    for endpoint in directory:
        if endpoint.sip is not None and SipAddress.parse(endpoint.sip.uri) == sender:
            return endpoint
    return None


def source_allowed(networks: tuple[str, ...], source_ip: str) -> bool:
    if not networks:
        return True
    try:
        address = ipaddress.ip_address(source_ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in networks)


def endpoint_identity(endpoint: Endpoint) -> Identity:
    """The room system speaks for its endpoint exactly as the terminal's token would."""
    return Identity("endpoint", endpoint.id, endpoint.name, endpoint=endpoint)


def guest_identity(meeting: Meeting, from_uri: str) -> Identity:
    """An unknown caller that gave the meeting's PIN: a participant of that meeting only."""
    sender = SipAddress.parse(from_uri)
    shown = f"{sender.user}@{sender.host}" if sender and sender.user else (sender.host if sender else "?")
    guest_id = f"sip-{secrets.token_hex(4)}"
    return Identity("link", guest_id, f"SIP {shown[:60]}", meeting=meeting.id, role="participant")


def pin_matches(meeting: Meeting, digits: str) -> bool:
    return bool(meeting.pin) and secrets.compare_digest(digits.encode(), str(meeting.pin).encode())

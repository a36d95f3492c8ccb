"""Is a client's SDP offer worth a media peer? One check for /ws offers, WHIP and WHEP.

An offer of just ``v=0``, or 60 KB of junk after it, used to be accepted: the media node made a
peer with nothing to send or receive, and the client stayed in the room as a phantom participant.
Here an offer is refused (400, naming what is missing) unless it has at least one usable m-line:
audio or video, not rejected (port 0), not inactive, with a codec a media node can forward, and
the ICE credentials and DTLS fingerprint without which no media can ever flow.

This reads the text only (no I/O, no aiortc): signaling-only nodes check offers too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from signaling.errors import bad_request

CODECS = {"audio": {"opus"}, "video": {"vp8", "h264"}}  # what mcu.peer.negotiation can forward
SENDS = ("sendrecv", "sendonly")
RECEIVES = ("sendrecv", "recvonly")


@dataclass
class _Section:
    kind: str
    port: str
    direction: str = "sendrecv"  # RFC 3264: no attribute means sendrecv
    bundle_only: bool = False
    codecs: set[str] = field(default_factory=set)
    ufrag: bool = False
    pwd: bool = False
    fingerprint: bool = False

    @property
    def ice(self) -> bool:
        return self.ufrag and self.pwd


def _sections(sdp: str) -> tuple[_Section, list[_Section]]:
    """The session-level part and the m-sections, with what this check needs of each."""
    session = _Section("session", "")
    media: list[_Section] = []
    current = session
    for raw in sdp.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            parts = line[2:].split()
            current = _Section(parts[0].lower() if parts else "", parts[1] if len(parts) > 1 else "")
            media.append(current)
        elif line in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"):
            current.direction = line[2:]
        elif line == "a=bundle-only":
            current.bundle_only = True
        elif line.startswith("a=rtpmap:"):
            _, _, rest = line.partition(" ")
            current.codecs.add(rest.split("/")[0].strip().lower())
        elif line.startswith("a=ice-ufrag:") and line[12:].strip():
            current.ufrag = True
        elif line.startswith("a=ice-pwd:") and line[10:].strip():
            current.pwd = True
        elif line.startswith("a=fingerprint:") and line[14:].strip():
            current.fingerprint = True
    return session, media


def _problem(section: _Section, wants: tuple[str, ...]) -> str | None:
    """Why this m-section carries no media, or None when it is usable."""
    if section.kind not in CODECS:
        return f"m={section.kind or '?'} is not audio or video"
    if section.port == "0" and not section.bundle_only:
        return f"m={section.kind} is rejected (port 0)"
    if section.direction not in wants:
        return f"m={section.kind} is {section.direction}"
    if not section.codecs & CODECS[section.kind]:
        offered = ", ".join(sorted(section.codecs)) or "none"
        return f"m={section.kind} offers no codec the server forwards ({offered}; wanted {'/'.join(sorted(CODECS[section.kind]))})"
    return None


def check_offer(sdp: str, purpose: str = "ws") -> None:
    """Raise a 400 ApiError unless ``sdp`` has media a peer can carry. ``purpose``: ``whip`` (the
    client must send), ``whep`` (the client must receive) or ``ws`` (either)."""
    wants = {"whip": SENDS, "whep": RECEIVES}.get(purpose, ("sendrecv", "sendonly", "recvonly"))
    session, media = _sections(sdp)
    if not media:
        raise bad_request("the SDP offer has no media (no m= line); offer audio and/or video")
    problems = [_problem(m, wants) for m in media]
    usable = [m for m, p in zip(media, problems) if p is None]
    if not usable:
        need = {"whip": " to send", "whep": " to receive"}.get(purpose, "")
        reasons = "; ".join(p for p in problems[:4] if p)
        raise bad_request(f"the SDP offer has no usable audio or video{need}: {reasons}")
    if not (session.ice or all(m.ice for m in usable)):
        raise bad_request("the SDP offer has no ICE credentials (a=ice-ufrag and a=ice-pwd)")
    if not (session.fingerprint or all(m.fingerprint for m in usable)):
        raise bad_request("the SDP offer has no DTLS fingerprint (a=fingerprint)")
    # an offer without a=candidate is fine: WHIP/WHEP clients trickle theirs by PATCH (RFC 9725
    # section 4.3), and our answer's candidates let the client's checks reach us (peer reflexive)

"""Trickle ICE for WHIP/WHEP sessions (RFC 9725 section 4.3): reading the PATCH body, an SDP
fragment (RFC 8840, ``application/trickle-ice-sdpfrag``), into the candidates a media peer takes.

A fragment holds ``a=ice-ufrag``/``a=ice-pwd`` (at session level or in a media section), media
sections (``m=`` lines, each named by its ``a=mid``) with their ``a=candidate`` lines, and
``a=end-of-candidates``. Each candidate goes to the offer's media section of that mid: with BUNDLE a
fragment names only the first one, and a candidate outside any section belongs to it too.
Credentials other than the offer's mean an ICE restart, which this server does not do (the
handler answers 422, as RFC 9725 asks of a server that takes trickle ICE but no restarts).

This reads text only (no I/O): everything wrong is a 400 naming the line, never the media node's fault.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from signaling.errors import bad_request
from signaling.guard.ice_candidate import check_candidate

TRICKLE = "application/trickle-ice-sdpfrag"
MAX_CANDIDATES = 64  # per PATCH; a browser gathers a handful per interface


@dataclass(frozen=True)
class OfferIce:
    """What a PATCH is checked against: the offer's ICE credentials and media section ids in order."""

    ufrags: frozenset[str]
    pwds: frozenset[str]
    mids: tuple[str, ...]


@dataclass
class Fragment:
    """A trickle PATCH body, read: its credentials, candidates (MediaPeer.add_ice_candidate's form)
    and whether the client has sent its last candidate."""

    ufrag: str | None = None
    pwd: str | None = None
    candidates: list[dict[str, Any]] = field(default_factory=list)
    end: bool = False

    def restarts(self, offer: OfferIce) -> bool:
        """New credentials: the client restarted ICE (RFC 8839 section 4.4.1.1.1)."""
        return (self.ufrag is not None and self.ufrag not in offer.ufrags) or (
            self.pwd is not None and self.pwd not in offer.pwds
        )


def offer_ice(sdp: str) -> OfferIce:
    """The credentials and mids of an offer that ``signaling.guard.offer_check`` accepted."""
    ufrags, pwds, mids = set(), set(), []
    for raw in sdp.splitlines():
        line = raw.strip()
        if line.startswith("a=ice-ufrag:"):
            ufrags.add(line[12:].strip())
        elif line.startswith("a=ice-pwd:"):
            pwds.add(line[10:].strip())
        elif line.startswith("a=mid:"):
            mids.append(line[6:].strip())
    return OfferIce(frozenset(ufrags), frozenset(pwds), tuple(mids))


def parse_fragment(text: str, offer: OfferIce) -> Fragment:
    """The fragment's content, or ApiError(bad_request) naming the first line that cannot be served."""
    frag = Fragment()
    sections: list[tuple[str | None, list[str]]] = [(None, [])]  # (mid, candidate lines); [0]: session level
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            sections.append((None, []))
        elif line.startswith("a=mid:"):
            sections[-1] = (line[6:].strip(), sections[-1][1])
        elif line.startswith("a=candidate:"):
            sections[-1][1].append(line[2:])
        elif line == "a=end-of-candidates":
            frag.end = True
        elif line.startswith("a=ice-ufrag:"):
            frag.ufrag = line[12:].strip() or None
        elif line.startswith("a=ice-pwd:"):
            frag.pwd = line[10:].strip() or None
    for mid, lines in sections:
        for candidate in lines:
            frag.candidates.append(_candidate(candidate, mid, offer))
    if len(frag.candidates) > MAX_CANDIDATES:
        raise bad_request(f"the fragment has {len(frag.candidates)} candidates; send at most {MAX_CANDIDATES} at once")
    if not (frag.candidates or frag.end or frag.ufrag or frag.pwd):
        raise bad_request(
            f"the {TRICKLE} body has no a=candidate, a=end-of-candidates or ICE credentials (RFC 8840 fragment)"
        )
    return frag


def _candidate(line: str, mid: str | None, offer: OfferIce) -> dict[str, Any]:
    check_candidate(line)  # aiortc asserts on garbage: say what is wrong here instead
    if mid is None:  # outside a section, or a section without a=mid: the first (bundled) one
        if not offer.mids:
            raise bad_request("a=candidate needs an a=mid: the offer names no media section by mid")
        mid = offer.mids[0]
    if mid not in offer.mids:
        raise bad_request(
            f"a=mid:{mid[:40]} is not a media section of the offer (its mids: {', '.join(offer.mids)})", "mid"
        )
    return {"candidate": line, "sdpMid": mid, "sdpMLineIndex": offer.mids.index(mid)}

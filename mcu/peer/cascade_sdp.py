"""What a cascade trunk says in its SDP, and how the origin reads it.

A cascade trunk (``mcu.cascade.trunk``) is one peer connection from an edge node to the meeting's
origin node, negotiated through the plain ``MediaNode``/``MediaPeer`` protocol (only SDP
strings cross it). Two facts ride in the edge's offers, in standard attributes:

* ``a=content:`` (RFC 4796) on a receive m-line asks the origin for a slot the first-offer
  rules would not give: ``composite`` (the meeting's composite, one rendition) and ``mix`` (the
  origin's audio mix). ``slides`` marks the upstream screen share as it does for any client;
  ``main``/``slides`` (``alt,main``/``alt,slides`` after the first codec) mark the down lines,
  one per codec and role (``cascade_role``).
* the msid *stream id* of each upstream (sendonly) m-line names the endpoint whose media the
  edge currently forwards in it (percent-encoded; ``-``: none). The origin relabels the
  matching ``Stream`` (``relabel``) so that floor, speaker, audio slots and composite treat it
  as that endpoint's own stream. A change of who goes up is a new offer from the edge.

It lives with the peer because the origin's ``LocalPeer`` reads it; the trunk (``mcu.cascade``,
a layer above) writes it. Text in, text out: no I/O, and nothing else of the product is imported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol
from urllib.parse import quote, unquote


class _Labelled(Protocol):
    endpoint_id: str


class CascadePeer(Protocol):
    """The origin's peer of a cascade trunk, as ``relabel`` sees it (``mcu.peer.peer.LocalPeer``)."""

    @property
    def streams(self) -> Mapping[str, _Labelled]: ...  # its upstream streams, by mid


NOBODY = "-"  # msid stream id of an upstream m-line that carries no one now
CASCADE_ROLE = "cascade"  # PeerSpec.role of a cascade trunk on the origin
CASCADE_CONTENT = ("composite", "mix")  # receive slots a cascade asks for by a=content
# a=content of a cascade's down line of another codec than its first ("alt,main", "alt,slides"):
# one line per codec and role; an origin of the version before reads it as neither (an unrouted
# "extra" line) and keeps serving the first pair
ALT = "alt"


def cascade_role(content: str) -> str | None:
    """The role a cascade's receive line asks for by its a=content (RFC 4796: a list of tags)."""
    tags = content.split(",")
    return next((role for role in (*CASCADE_CONTENT, "main", "slides") if role in tags), None)


def encode_label(endpoint_id: str | None) -> str:
    """An endpoint id as an msid token (RFC 8830: 1*64 token-char; '%' is one)."""
    return quote(endpoint_id, safe="") if endpoint_id else NOBODY


def msid_labels(sdp: str) -> dict[str, str | None]:
    """mid -> endpoint id carried (None: nobody) for every m-line with an msid."""
    labels: dict[str, str | None] = {}
    mid = msid = None

    def flush() -> None:
        if mid is not None and msid is not None:
            labels[mid] = None if msid == NOBODY else unquote(msid)

    for raw in sdp.splitlines():
        if raw.startswith("m="):
            flush()
            mid = msid = None
        elif raw.startswith("a=mid:"):
            mid = raw[6:].strip()
        elif raw.startswith("a=msid:"):
            msid = raw[7:].split()[0] if raw[7:].split() else None
    flush()
    return labels


def add_content(sdp: str, contents: dict[str, str]) -> str:
    """Insert ``a=content:<value>`` after ``a=mid:<mid>`` for each mid in ``contents``
    (aiortc does not write the attribute; the origin's parser reads it)."""
    if not contents:
        return sdp
    out = []
    for raw in sdp.split("\r\n"):
        out.append(raw)
        if raw.startswith("a=mid:") and raw[6:].strip() in contents:
            out.append(f"a=content:{contents[raw[6:].strip()]}")
    return "\r\n".join(out)


def relabel(peer: CascadePeer, sdp: str) -> None:
    """Origin side: give a cascade peer's upstream streams the endpoint ids the edge names.

    A stream that carries nobody gets the empty endpoint id, which the meeting never routes
    (so the cascade itself never appears as a camera or a speaker). ``Stream.via`` keeps the
    cascade's own id: the meeting never sends a cascade back what came up through it.
    """
    labels = msid_labels(sdp)
    for mid, stream in peer.streams.items():
        stream.endpoint_id = labels.get(mid) or ""

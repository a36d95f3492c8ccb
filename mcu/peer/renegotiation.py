"""The server's renegotiation offers keep what the peer's earlier negotiations fixed (#17).

aiortc's createOffer writes every m-line afresh from its own tables: header-extension ids
(sdes:mid = 1, ssrc-audio-level = 2, abs-send-time = 3) and payload types (VP8 = 97...). A browser
that made the first offer chose others (Chromium: ssrc-audio-level = 1, sdes:mid = 4, VP8 = 96),
and once negotiated an id keeps its meaning for the life of the connection (RFC 8285, JSEP
5.2.2): Chromium refuses a later offer that renumbers one ("RTP extension ID reassignment not
supported"), so a screen share offered to the other laptop never arrived. ``NegotiatedIds``
remembers, per peer, each extension URI's id and each codec format's payload type from every
completed negotiation, and rewrites the text of the server's offer before it is applied:
existing m-lines keep the codec lines of the last answer verbatim, new ones reuse known payload
types or take free ones, and every extmap gets its URI's id (a new URI: an id not yet taken).
aiortc ignores the payload types and ids of its local description, so rewriting its text is safe.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiortc import sdp as aiosdp

from mcu.peer.codec_choice import _sections, offer_for_aiortc

CODEC_LINES = ("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:")
EXTMAP = "a=extmap:"
EXTENSION_IDS = range(1, 15)  # one-byte header extensions (RFC 8285)
DYNAMIC_PAYLOAD_TYPES = range(96, 128)

CodecKey = tuple[object, ...]  # (NAME, clock, format): what a payload type stands for


class NegotiatedIds:
    """Extension ids and payload types one peer has negotiated; first meaning wins, for life."""

    def __init__(self) -> None:
        self.extension_ids: dict[str, int] = {}
        self.payload_types: dict[CodecKey, int] = {}
        self.last_answer = ""  # the SDP of the last completed negotiation's answer

    def learn(self, offer: str, answer: str) -> None:
        """A negotiation completed: the answer's ids first (what was agreed), then the offer's (ids
        it proposed stay reserved for the same meaning)."""
        for text in (answer, offer):
            for section in _sections(text)[1:]:
                for uri, ext_id in _extmaps(section):
                    if ext_id not in self.extension_ids.values():
                        self.extension_ids.setdefault(uri, ext_id)
                for pt, key in _formats(section).items():
                    if pt not in self.payload_types.values():
                        self.payload_types.setdefault(key, pt)
        self.last_answer = answer

    def keep(self, offer: str) -> str:
        """The server's offer, rewritten to keep every id and payload type already negotiated."""
        answered = {_mid(s): s for s in _sections(self.last_answer)[1:]}
        sections = _sections(offer)
        out = list(sections[0])
        for section in sections[1:]:
            before = answered.get(_mid(section))
            section = _same_codecs(section, before) if before else self._renumber_formats(section)
            lines = [self._renumber_extmap(line) if line.startswith(EXTMAP) else line for line in section]
            out += [line for line in lines if line]
        return "\r\n".join(out) + "\r\n"

    def _renumber_extmap(self, line: str) -> str:
        head, _, rest = line.partition(" ")
        ext_id, slash, direction = head[len(EXTMAP) :].partition("/")
        uri = rest.split(" ", 1)[0]
        if uri not in self.extension_ids:
            free = [i for i in EXTENSION_IDS if i not in self.extension_ids.values()]
            if not free:
                return ""  # no id left: the extension is not offered (dropped below)
            self.extension_ids[uri] = free[0]
        return f"{EXTMAP}{self.extension_ids[uri]}{slash}{direction} {rest}"

    def _renumber_formats(self, section: list[str]) -> list[str]:
        """A new m-line: each format gets the payload type it has in this peer, or a free one."""
        formats = _formats(section)
        known = {pt: self.payload_types[key] for pt, key in formats.items() if key in self.payload_types}
        # a fresh format keeps aiortc's payload type unless this peer gave it another meaning
        reserved = set(self.payload_types.values()) | set(known.values()) | set(formats)
        for pt, key in formats.items():
            if pt in known:
                continue
            if pt in self.payload_types.values() or pt in known.values():
                pt_new = next((p for p in DYNAMIC_PAYLOAD_TYPES if p not in reserved), pt)
                reserved.add(pt_new)
            else:
                pt_new = pt
            known[pt] = self.payload_types[key] = pt_new
        mapping = {str(pt): str(new) for pt, new in known.items()}
        return [_renumbered(line, mapping) for line in section]


def answer_for_aiortc(sdp_text: str) -> str:
    """A client's answer as aiortc can apply it: its H.264 formats (echoed from a client's first
    offer, possibly a profile aiortc's table lacks) given one aiortc has, as client offers are."""
    desc = aiosdp.SessionDescription.parse(sdp_text)
    return offer_for_aiortc(sdp_text, {m.rtp.muxId: m.rtp.codecs for m in desc.media if m.rtp.muxId})


def _same_codecs(section: list[str], answered: list[str]) -> list[str]:
    """An existing m-line: the formats and codec lines of the last answer, as negotiated."""
    fmt = answered[0].split(" ")[3:]
    m_line = " ".join(section[0].split(" ")[:3] + fmt)
    codec_lines = [line for line in answered if line.startswith(CODEC_LINES)]
    rest = [line for line in section[1:] if not line.startswith(CODEC_LINES)]
    at = next((i for i, line in enumerate(section[1:]) if line.startswith(CODEC_LINES)), len(rest))
    return [m_line, *rest[:at], *codec_lines, *rest[at:]]


def _renumbered(line: str, mapping: dict[str, str]) -> str:
    if line.startswith("m="):
        parts = line.split(" ")
        return " ".join(parts[:3] + [mapping.get(p, p) for p in parts[3:]])
    if line.startswith(CODEC_LINES):
        attr, _, rest = line.partition(":")
        pt, _, value = rest.partition(" ")
        if line.startswith("a=fmtp:") and value.startswith("apt="):
            value = "apt=" + mapping.get(value[4:], value[4:])
        return f"{attr}:{mapping.get(pt, pt)} {value}".rstrip()
    return line


def _mid(section: list[str]) -> str:
    return next((line[6:].strip() for line in section if line.startswith("a=mid:")), "")


def _extmaps(section: Iterable[str]) -> list[tuple[str, int]]:
    found = []
    for line in section:
        if line.startswith(EXTMAP):
            head, _, rest = line.partition(" ")
            found.append((rest.split(" ", 1)[0], int(head[len(EXTMAP) :].split("/")[0])))
    return found


def _formats(section: list[str]) -> dict[int, CodecKey]:
    """What each payload type of an m-section stands for, in order: (NAME, clock, format), the
    format being H.264's (packetization mode, profile-level-id) and RTX's that of its apt."""
    names: dict[int, tuple[str, int]] = {}
    params: dict[int, dict[str, str]] = {}
    for line in section:
        if line.startswith(("a=rtpmap:", "a=fmtp:")):
            pt_text, _, value = line.split(":", 1)[1].partition(" ")
            if not pt_text.isdigit():
                continue
            if line.startswith("a=rtpmap:"):
                name, _, clock = value.partition("/")
                names[int(pt_text)] = (name.upper(), int(clock.split("/")[0] or 0))
            else:
                params[int(pt_text)] = dict(p.strip().partition("=")[::2] for p in value.split(";"))

    def key(pt: int) -> CodecKey:
        name, clock = names[pt]
        if name == "RTX":
            apt = params.get(pt, {}).get("apt", "")
            return (name, clock, key(int(apt)) if apt.isdigit() and int(apt) in names else apt)
        if name == "H264":
            fmtp = params.get(pt, {})
            return (name, clock, fmtp.get("packetization-mode", "0"), fmtp.get("profile-level-id", "").lower())
        return (name, clock)

    return {pt: key(pt) for pt in names}

"""Hypothesis strategies for the fuzz layer: hostile text, JSON values, client messages derived from
the msgspec types the server decodes with, and mutations of valid SDP and YAML documents (a valid
document with a few lines broken reaches much deeper than random bytes)."""

from __future__ import annotations

from typing import Any, Sequence

import msgspec
from hypothesis import strategies as st

# characters that broke parsers before: NUL and other controls, non-ASCII digits, separators,
# a lone surrogate (not encodable as UTF-8), right-to-left and zero-width marks, Vietnamese
SPECIAL = [
    "\x00",
    "\x01",
    "\x1f",
    "\x7f",
    "\n",
    "\r",
    "\t",
    "²",
    "١",
    "２",
    ";",
    "=",
    ":",
    "@",
    "%",
    "/",
    "\\",
    "\ud800",
    "\u202e",
    "\u200b",
    "\ufeff",
    "ệ",
    "Đ",
    " ",
    "'",
    '"',
    "{",
    "}",
    "$",
    "..",
    "-",
]


def nasty_text(max_size: int = 40) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=max_size),
        st.lists(st.sampled_from(SPECIAL) | st.text(max_size=4), max_size=max_size // 2).map("".join),
        st.sampled_from(
            [
                "",
                "0",
                "-1",
                "9" * 30,
                "null",
                "true",
                "NaN",
                "0001-01-01T00:00",
                "9999-12-31T23:59:59-12:00",
                "2030-01-07T08:00",
                "x" * 300,
                "a\x00b",
                "hg-meo-vac",
                "all",
                "tier:commune@hg-meo-vac",
            ]
        ),
    )


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | nasty_text()
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(nasty_text(12), inner, max_size=4),
        max_leaves=max_leaves,
    )


def _for_type(info: msgspec.inspect.Type, known: Sequence[str]) -> st.SearchStrategy[Any]:
    """Values of a msgspec type, within its constraints most of the time (to reach the handlers)."""
    t = msgspec.inspect
    if isinstance(info, t.StrType):
        low, high = info.min_length or 0, min(info.max_length or 80, 80)
        fitting = st.text(min_size=low, max_size=high) | st.sampled_from(list(known) or ["x"])
        return st.one_of(fitting, fitting, nasty_text())
    if isinstance(info, t.IntType):
        low = info.ge if info.ge is not None else -(2**40)
        high = info.le if info.le is not None else 2**40
        return st.integers(low, high) | st.integers()
    if isinstance(info, t.FloatType):
        return st.floats(allow_nan=False)
    if isinstance(info, t.BoolType):
        return st.booleans()
    if isinstance(info, t.NoneType):
        return st.none()
    if isinstance(info, t.LiteralType):
        return st.sampled_from(list(info.values))
    if isinstance(info, t.UnionType):
        return st.one_of([_for_type(x, known) for x in info.types])
    if isinstance(info, t.ListType):
        return st.lists(_for_type(info.item_type, known), max_size=min(info.max_length or 5, 5))
    if isinstance(info, t.DictType):
        return st.dictionaries(_for_type(info.key_type, known), _for_type(info.value_type, known), max_size=4)
    return json_values()


def struct_dicts(
    model: type, known: Sequence[str] = (), extra: dict[str, Any] | None = None
) -> st.SearchStrategy[dict]:
    """JSON objects for a msgspec Struct: its fields drawn from their types, then sometimes a field
    dropped, a wrong value or an unknown field added (each is a 4xx the server must name)."""
    info = msgspec.inspect.type_info(model)
    fields = {f.name: _for_type(f.type, known) for f in info.fields}

    @st.composite
    def build(draw: st.DrawFn) -> dict:
        out = dict(extra or {})
        for name, strategy in fields.items():
            if draw(st.integers(0, 9)) > 0:  # mostly present
                out[name] = draw(strategy) if draw(st.integers(0, 7)) else draw(json_values(4))
        if not draw(st.integers(0, 7)):
            out[draw(nasty_text(12))] = draw(json_values(3))
        return out

    return build()


# ---- SDP ---------------------------------------------------------------------------------------
SDP_JUNK = [
    "m=video 9 UDP/TLS/RTP/SAVPF 96",
    "m=audio 0 RTP/AVP 0",
    "a=rtpmap:96 VP8/90000",
    "a=rtpmap:x",
    "a=fingerprint:sha-256 ZZ",
    "a=ice-ufrag:",
    "a=ice-pwd:x",
    "a=setup:bogus",
    "a=mid:",
    "a=group:BUNDLE 9 9",
    "a=ssrc:4294967296 cname:x",
    "a=ssrc-group:FID 1",
    "a=candidate:garbage",
    "a=extmap:99999 urn:x",
    "a=fmtp:96 profile-level-id=zz",
    "a=rtcp-fb:96",
    "c=IN IP4 999.1.1.1",
    "b=AS:-1",
    "a=sendrecv",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "a=sctp-port:70000",
    "a=msid:",
    "a=rid:h send",
    "a=simulcast:send h;m",
    "o=- x x IN IP4 0",
    "t=0 0",
    "v=1",
    "a=max-message-size:-5",
    "m=",
    "a=",
]


@st.composite
def sdp_mutations(draw: st.DrawFn, base: str) -> str:
    """A valid offer with 1-4 line edits: deleted, duplicated, replaced, inserted, a token changed,
    or the text cut short."""
    lines = base.replace("\r\n", "\n").strip().split("\n")
    for _ in range(draw(st.integers(1, 4))):
        op, i = draw(st.integers(0, 5)), draw(st.integers(0, len(lines) - 1))
        if op == 0 and len(lines) > 1:
            del lines[i]
        elif op == 1:
            lines.insert(i, lines[i])
        elif op == 2:
            lines[i] = draw(st.sampled_from(SDP_JUNK) | nasty_text(60))
        elif op == 3:
            lines.insert(i, draw(st.sampled_from(SDP_JUNK)))
        elif op == 4:
            tokens = lines[i].split(" ")
            tokens[draw(st.integers(0, len(tokens) - 1))] = draw(nasty_text(12))
            lines[i] = " ".join(tokens)
        else:
            lines = lines[: max(1, i)]
    text = "\r\n".join(lines) + "\r\n"
    return text[: draw(st.integers(1, len(text)))] if draw(st.integers(0, 9)) == 0 else text


def sdp_bodies(base: str) -> st.SearchStrategy[str]:
    return st.one_of(
        sdp_mutations(base),
        sdp_mutations(base),
        st.just("v=0\r\n"),
        nasty_text(200).map(lambda s: "v=0\r\n" + s),
        nasty_text(200),
    )


def sdpfrag_bodies(base: str) -> st.SearchStrategy[str]:
    """Trickle ICE PATCH bodies (RFC 8840 fragments): a valid fragment with lines broken, lines
    of it alone (an end-of-candidates, new credentials: a restart), or junk."""
    return st.one_of(
        sdp_mutations(base),
        sdp_mutations(base),
        st.lists(st.sampled_from(base.strip().split("\r\n")), min_size=1, max_size=4).map("\r\n".join),
        nasty_text(20).map(lambda t: f"{base}a=ice-ufrag:new{t}\r\n"),  # an ICE restart
        nasty_text(200),
    )


def video_codecs_values() -> st.SearchStrategy[Any]:
    """Values for a meeting's ``video_codecs``: codec names in any case, repeated, unknown, or not a list."""
    names = st.sampled_from(["VP8", "vp8", "H264", "h264", "H.264", "AV1", "VP9", "OPUS", ""]) | nasty_text(10)
    return st.one_of(st.lists(names, max_size=4), st.lists(names, max_size=4), json_values(4))


def digit_values(max_digits: int = 10) -> st.SearchStrategy[Any]:
    """Values for a meeting's ``dial_number`` or ``pin`` (#14): digit strings of any length (leading
    zeros, too short, too long), other digits (Unicode), text, numbers and JSON."""
    digits = st.text(alphabet="0123456789", max_size=max_digits)
    return st.one_of(
        digits, digits, st.text(alphabet="0123456789١٢٣４ \n+#*", max_size=max_digits), nasty_text(10), json_values(2)
    )


# ---- YAML --------------------------------------------------------------------------------------
@st.composite
def yaml_mutations(draw: st.DrawFn, base: str) -> str:
    """A valid YAML document with 1-3 line edits: deleted, duplicated, a value replaced, junk
    inserted, indentation changed, or cut short."""
    lines = base.split("\n")
    for _ in range(draw(st.integers(1, 3))):
        op, i = draw(st.integers(0, 5)), draw(st.integers(0, len(lines) - 1))
        if op == 0 and len(lines) > 1:
            del lines[i]
        elif op == 1:
            lines.insert(i, lines[i])
        elif op == 2 and ":" in lines[i]:
            key = lines[i].split(":", 1)[0]
            lines[i] = f"{key}: {draw(yaml_scalars())}"
        elif op == 3:
            lines.insert(i, draw(st.sampled_from(YAML_JUNK) | nasty_text(40)))
        elif op == 4:
            lines[i] = " " * draw(st.integers(0, 5)) + lines[i].lstrip()
        else:
            lines = lines[: max(1, i)]
    return "\n".join(lines)


YAML_JUNK = [
    "- {}",
    "? [a, b]\n: c",
    "&a [*a]",
    "!!python/object:os.system x",
    "x: !!binary AAAA",
    "'",
    "{",
    "key: [1, 2",
    "- - - -",
    "\t",
    "version: 2",
    "endpoints: null",
    "limits: {port: x}",
    "<<: *undefined",
    "x: 1e999",
    "x: -0x10",
    "x: 0o777",
    "x: .nan",
    "x: ~",
    "x: 2030-01-07",
    "%YAML 9.9",
    "---",
    "...",
]


def yaml_scalars() -> st.SearchStrategy[str]:
    return st.sampled_from(
        [
            "",
            "~",
            "null",
            "[]",
            "{}",
            "-1",
            "0",
            "1e999",
            "99999999999999999999",
            "true",
            "'x'",
            '"\\x00"',
            "[a, [b]]",
            "{a: 1}",
            ".inf",
            "2030-01-07",
            "x" * 300,
            "'ệ'",
            '"\\ud800"',
        ]
    ) | nasty_text(20).map(lambda s: repr(s))

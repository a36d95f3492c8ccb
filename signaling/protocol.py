"""WebSocket signaling protocol, version 1: typed, validated JSON messages.

Every message is a JSON object ``{"v": 1, "type": "...", "id": "optional request id", ...}``.
Client messages are decoded strictly (unknown fields and wrong types are errors); the server
answers a bad message with ``{"type": "error", "code", "message", "ref": <id>}`` and changes
nothing. Server messages are plain dicts built by ``server_msg``.

Client -> server
  hello{token}                      first message: authenticates the connection
  join{meeting_id}                  enter the open occurrence of a meeting
  leave{}                           leave it
  offer{sdp} / answer{sdp}          SDP to the media node (answer: to a server-made offer); an offer's
                                    error is "retry" (crossed the server's offer: answer it, offer
                                    again) or "offer_refused" (cannot be served; the reason in words)
  ice{candidate, sdp_mid, sdp_mline_index}   trickled candidate (candidate "" = end)
  raise_hand{} / lower_hand{}       ask for / withdraw a floor request
  grant_floor{endpoint_id}          chair/operator: give the floor (revokes the previous holder)
  revoke_floor{}                    chair/operator: take the floor back
  mute{endpoint_id, kind, muted}    chair/operator: mute or unmute an endpoint's audio/video
  mute_all{muted}                   chair/operator: mute everyone's audio but the floor holder
  lock{locked}                      chair/operator: only chair and operators may (re)join
  remove{endpoint_id}               chair/operator: send an endpoint out; it cannot rejoin this occurrence
  layout{layout}                    chair/operator: the composite's layout (speaker, speaker_strip,
                                    grid_2x2, grid_3x3, grid_4x4, presentation)
  record{on}                        chair/operator: start or stop recording the meeting
  ping{}

Server -> client
  welcome, meeting_opened, meeting_closed, joined, left, participants, offer, answer, ice, hand,
  floor, mute_request, locked, removed, layout, recording, speaker, presence (operators: an endpoint came or went),
  media_reset{meeting_id, reason} (the media node serving this client was lost: still in the meeting,
  open a new peer connection and send a new offer; the server places it on a live node), error, pong
"""

from __future__ import annotations

import json
import re
import time
from array import array
from itertools import accumulate
from typing import Annotated, Any, Literal, Union

import msgspec

VERSION = 1
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Sdp = Annotated[str, msgspec.Meta(min_length=1, max_length=60_000)]


class _Msg(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    v: Literal[1] = 1
    id: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class Hello(_Msg, tag="hello"):
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]


class Join(_Msg, tag="join"):
    meeting_id: Id


class Leave(_Msg, tag="leave"):
    pass


class Offer(_Msg, tag="offer"):
    sdp: Sdp


class Answer(_Msg, tag="answer"):
    sdp: Sdp


class Ice(_Msg, tag="ice"):
    candidate: Annotated[str, msgspec.Meta(max_length=1024)]
    sdp_mid: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    sdp_mline_index: Annotated[int, msgspec.Meta(ge=0, le=64)] | None = None


class RaiseHand(_Msg, tag="raise_hand"):
    pass


class LowerHand(_Msg, tag="lower_hand"):
    pass


class GrantFloor(_Msg, tag="grant_floor"):
    endpoint_id: Id


class RevokeFloor(_Msg, tag="revoke_floor"):
    pass


class Mute(_Msg, tag="mute"):
    endpoint_id: Id
    kind: Literal["audio", "video"] = "audio"
    muted: bool = True


class MuteAll(_Msg, tag="mute_all"):
    muted: bool = True


class Lock(_Msg, tag="lock"):
    locked: bool = True


class Remove(_Msg, tag="remove"):
    endpoint_id: Id


LAYOUTS = ("speaker", "speaker_strip", "grid_2x2", "grid_3x3", "grid_4x4", "presentation")


class SetLayout(_Msg, tag="layout"):
    layout: Literal["speaker", "speaker_strip", "grid_2x2", "grid_3x3", "grid_4x4", "presentation"]


class Record(_Msg, tag="record"):
    on: bool = True


class Ping(_Msg, tag="ping"):
    pass


ClientMessage = Union[
    Hello,
    Join,
    Leave,
    Offer,
    Answer,
    Ice,
    RaiseHand,
    LowerHand,
    GrantFloor,
    RevokeFloor,
    Mute,
    MuteAll,
    Lock,
    Remove,
    SetLayout,
    Record,
    Ping,
]
CHAIR_ACTIONS = (GrantFloor, RevokeFloor, Mute, MuteAll, Lock, Remove, SetLayout, Record)
CLIENT_TYPES = sorted(t.__struct_config__.tag for t in ClientMessage.__args__)

_decoder = msgspec.json.Decoder(ClientMessage)


class ProtocolError(ValueError):
    def __init__(self, message: str, ref: str | None = None) -> None:
        super().__init__(message)
        self.ref = ref


class PolicyViolation(ProtocolError):
    """A message no client sends by mistake (JSON nested past the limit): answered with an error,
    then the connection is closed with 1008."""


_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string, escapes included
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = str.maketrans({"[": "\x01", "{": "\x01", "]": "\xff", "}": "\xff"})


def too_deep(text: str, limit: int) -> bool:
    """Whether JSON ``text`` nests arrays/objects deeper than ``limit``, found without parsing it
    (a parser recurses once per level). Brackets inside strings do not count."""
    if text.count("[") + text.count("{") <= limit:  # nearly every message: no scan at all
        return False
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    # running depth as +1/-1 bytes summed in C: a 64 KB message of brackets costs ~5 ms, not ~15
    steps = array("b", brackets.translate(_STEP).encode("latin-1"))
    return max(accumulate(steps), default=0) > limit


def decode(raw: str | bytes, max_depth: int = 32) -> ClientMessage:
    """Decode one client message or raise ProtocolError with a message naming the problem."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if too_deep(text, max_depth):
        raise PolicyViolation(f"message refused: JSON nested deeper than {max_depth} levels")
    try:
        return _decoder.decode(raw)
    except RecursionError:  # only when max_depth is set near Python's recursion limit
        raise PolicyViolation("message refused: JSON nested too deeply") from None
    except msgspec.ValidationError as exc:
        text = str(exc)
        if "Invalid value" in text and "$.type" in text or "Missing required field `type`" in text:
            text = f"{text}; known types: {', '.join(CLIENT_TYPES)}"
        raise ProtocolError(f"invalid message: {text}", _request_id(raw)) from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"malformed JSON: {exc}") from None


def _request_id(raw: str | bytes) -> str | None:
    try:
        obj = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None
    ref = obj.get("id") if isinstance(obj, dict) else None
    return ref if isinstance(ref, str) and len(ref) <= 64 else None


def server_msg(type_: str, ref: str | None = None, **fields: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {"v": VERSION, "type": type_, "ts": round(time.time(), 3)}
    if ref is not None:
        msg["ref"] = ref
    msg.update(fields)
    return msg


def encode(msg: dict[str, Any]) -> str:
    """Server messages on the wire: compact JSON, Vietnamese text kept as UTF-8."""
    return json.dumps(msg, ensure_ascii=False, separators=(",", ":"))


def error_msg(code: str, message: str, ref: str | None = None, **extra: Any) -> dict[str, Any]:
    return server_msg("error", ref, code=code, message=message, **extra)

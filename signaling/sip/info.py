"""SIP INFO bodies the gateway reads and writes, and the PIN a caller keys in (#14).

* DTMF: ``application/dtmf-relay`` (``Signal=5\\r\\nDuration=160``, the form Cisco/Polycom send)
  and ``application/dtmf`` (the bare digit); RFC 4733 telephone-events reach us from the media leg
  as ``{"type": "dtmf", "digit": ...}``. Both feed one ``PinEntry``.
* Key frames: ``application/media_control+xml`` with ``picture_fast_update`` (RFC 5168): a room
  asking us for one, or us asking the room.
* ``CallEvents``: the media leg's events of one call (its EventSink), ``info_handler``: the call's
  INFO requests; both feed the call's PinEntry and key frame requests.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

from mcu.api import JsonObject, MediaPeer

DTMF_RELAY = "application/dtmf-relay"
DTMF = "application/dtmf"
MEDIA_CONTROL = "application/media_control+xml"
DIGITS = "0123456789*#"
PIN_TIMEOUT_S = 20.0
PIN_PAUSE_S = 3.0  # no key for this long after some digits: the entry is complete
MAX_DIGITS = 8
PICTURE_FAST_UPDATE = (
    '<?xml version="1.0" encoding="utf-8" ?>\r\n'
    "<media_control><vc_primitive><to_encoder><picture_fast_update/></to_encoder></vc_primitive></media_control>\r\n"
)
_SIGNAL = re.compile(r"^\s*signal\s*=\s*(\S)", re.IGNORECASE | re.MULTILINE)


def dtmf_digit(content_type: str, body: str) -> str | None:
    """The key an INFO carries, or None when it carries none (or something else)."""
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == DTMF_RELAY:
        match = _SIGNAL.search(body)
        digit = match.group(1) if match else ""
    elif ctype == DTMF:
        digit = body.strip()[:1]
    else:
        return None
    return digit if digit and digit in DIGITS else None


def wants_keyframe(content_type: str, body: str) -> bool:
    ctype = content_type.split(";")[0].strip().lower()
    return ctype == MEDIA_CONTROL and "picture_fast_update" in body


class PinEntry:
    """Keys from either path, in arrival order; ``read`` returns the digits up to ``#``, or those
    keyed before a pause of ``pause_s`` (rooms whose users never press ``#``), or MAX_DIGITS of
    them; ``*`` starts over. It never stops at the PIN's own length: that would tell it."""

    def __init__(self) -> None:
        self._keys: asyncio.Queue[str] = asyncio.Queue(maxsize=64)  # more keys than a PIN: dropped

    def key(self, digit: str) -> None:
        if digit in DIGITS and not self._keys.full():
            self._keys.put_nowait(digit)

    async def read(self, timeout_s: float = PIN_TIMEOUT_S, pause_s: float = PIN_PAUSE_S) -> str | None:
        """The PIN keyed in, or None when none came within ``timeout_s`` (for the whole entry)."""
        try:
            return await asyncio.wait_for(self._collect(pause_s), timeout_s)
        except asyncio.TimeoutError:
            return None

    async def _collect(self, pause_s: float) -> str:
        digits = ""
        while True:
            try:
                key = await asyncio.wait_for(self._keys.get(), pause_s if digits else None)
            except asyncio.TimeoutError:
                return digits
            if key == "#":
                return digits
            digits = "" if key == "*" else digits + key
            if len(digits) >= MAX_DIGITS:
                return digits


class CallEvents:
    """The media leg's events (its EventSink) for one call: DTMF keys, key frame wishes, timeouts."""

    def __init__(self) -> None:
        self.pin = PinEntry()
        self.on_keyframe_wanted: Callable[[], Awaitable[None]] | None = None
        self.on_timeout: Callable[[], None] | None = None
        self.tasks: set[asyncio.Task[None]] = set()  # key frame INFOs under way (cancelled by close)
        self.offer: asyncio.Future[str] = asyncio.get_running_loop().create_future()  # the leg's own offer

    async def __call__(self, event: JsonObject) -> None:
        kind = event.get("type")
        if kind == "dtmf" and isinstance(event.get("digit"), str):
            self.pin.key(str(event["digit"]))
        elif kind == "offer" and isinstance(event.get("sdp"), str) and not self.offer.done():
            self.offer.set_result(str(event["sdp"]))
        elif kind == "keyframe_wanted" and self.on_keyframe_wanted is not None:
            task = asyncio.ensure_future(self.on_keyframe_wanted())  # not on the leg's own task (EventSink rule)
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        elif kind == "media_timeout" and self.on_timeout is not None:
            self.on_timeout()


def info_handler(peer_of: Callable[[], MediaPeer], events: CallEvents) -> Callable[[str, str], Awaitable[None]]:
    async def on_info(content_type: str, body: str) -> None:
        digit = dtmf_digit(content_type, body)
        if digit is not None:
            events.pin.key(digit)
        elif wants_keyframe(content_type, body):
            await peer_of().request_keyframe()

    return on_info

"""A SIP room system's media in a meeting: one more kind of member (implements mcu.api.MediaPeer
and mcu.meeting.contracts.Member).

``LocalMediaNode.open_peer`` makes one for ``spec.extra["transport"] == "rtp"``; the SIP gateway
then calls ``answer = await leg.handle_offer(offer)`` for the INVITE's offer (or the 200's, when
we dialled out with a delayed offer) and again for each re-INVITE (hold, resume, a new address,
another codec). For an INVITE without SDP the gateway sets ``spec.extra["rtp_offer"]`` (the room's
address): right after open the leg sends ``{"type": "offer", "sdp": ...}`` to its sink
(``mcu.rtp.own_offer``), and the room's answer, from the ACK, goes to ``handle_answer``. SDP: ``mcu.rtp.sdp``; per chosen m-line a ``mcu.rtp.line.LegLine`` (sockets, SRTP,
media in and out). The leg is always in MCU mode: it receives the composite (H.264 mode 0
constrained baseline, or VP8) and its N-1 mix in its own codec (``spec.extra["audio_codec"]`` on
the leg's copy of the spec, read by the pipeline's ``audio_profile``); it publishes its camera and
its microphone (Opus with levels) like any endpoint.

What else it does: the starting composite rendition from the offer's b=AS/b=TIAS (and that
bandwidth as the output's first estimate, so the rendition controller never climbs above it),
RTCP (SR/RR and CNAME about once a second, from the node's ticker; PLI/FIR/NACK/RR/TMMBR from the
room to the router), and events through its sink: ``dtmf`` (once per RFC 4733 event),
``keyframe_wanted`` (at most every ``KEYFRAME_EVENT_S``; the gateway may send SIP INFO),
``media_timeout`` (no RTP or RTCP for ``MEDIA_TIMEOUT_S`` while the room is not on hold).

A new codec, a new key or new m-lines in a re-INVITE rebuild the lines' media and take the leg out
of the meeting and back in (its listener and composite subscription are made anew); the sockets
of a line index stay, so the answer keeps its ports.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, Awaitable, Callable, Protocol, cast

from mcu.api import VIDEO_CODECS, MediaError, PeerExtra, PeerSpec
from mcu.audio.telephony import TELEPHONY
from mcu.bridge.rendition_policy import VIDEO_RENDITIONS
from mcu.peer.codec_choice import served_video_codecs
from mcu.peer.errors import PeerClosed
from mcu.peer.owner_task import OwnerTask
from mcu.rtp.video_caps import decodable_rendition, fitting_rendition, rendition_ceiling_bps, room_video_kbps
from mcu.rtp.line import LegLine
from mcu.rtp.choice import codec_orders
from mcu.rtp.own_offer import build_offer
from mcu.rtp.ports import RtpPorts, checked_address, our_address
from mcu.rtp.sdp import Chosen, LocalMedia, RtpOffer, build_answer, choose, parse_offer
from mcu.sfu.router import Router
from mcu.sfu.stream import Stream
from mcu.sfu.subscriber import Output

log = logging.getLogger("mcu.rtp.leg")

MEDIA_TIMEOUT_S = 30.0
KEYFRAME_EVENT_S = 2.0
CAMERA_KBPS = 1500  # our answer's video b=AS: what we take from the room's camera (RFC 3264 §5)


class LegHost(Protocol):
    """What the leg asks of its meeting (``mcu.meeting.meeting.Meeting``)."""

    @property
    def router(self) -> Router: ...

    def add_peer(self, peer: Any) -> None: ...

    def peer_changed(self, peer: Any) -> None: ...

    def remove_peer(self, peer: Any) -> None: ...


class RtpLeg:
    media_mode = "mcu"  # a room system receives the composite and its mix

    def __init__(
        self,
        meeting: LegHost,
        spec: PeerSpec,
        events: Callable[[dict[str, Any]], Awaitable[None]],
        *,
        host: str,
        encode_codecs: Sequence[str] = VIDEO_CODECS,
        keyframe_interval: float = 0.5,
        on_closed: Callable[[RtpLeg], None] | None = None,
    ) -> None:
        self.meeting = meeting
        self.spec = dataclasses.replace(spec, extra=cast(PeerExtra, {**spec.extra, "media_mode": "mcu"}))
        self.endpoint_id = spec.endpoint_id
        self.events = events
        self.host = host
        # what the room may receive: the meeting's video codecs that this node can encode the composite in
        meeting_codecs = served_video_codecs(spec.extra.get("video_codecs"))
        self.video_codecs = [c for c in meeting_codecs if c in encode_codecs] or meeting_codecs
        self.keyframe_interval = keyframe_interval
        self.on_closed = on_closed
        self.lines: dict[int, LegLine] = {}  # by the offer's m-line index
        self._ports: dict[int, RtpPorts] = {}  # kept across re-INVITEs: the answer keeps its ports
        self._proven: set[str] = set()  # hosts that sent us a valid packet: where we may send (RtpPorts)
        self.pending_roles: list[str] = []
        self.refused_roles: list[str] = []
        self.congested = False
        self.closed = False
        self.muted_kinds: set[str] = set()
        origin = spec.extra.get("sdp_origin")  # the call's o= when another leg answered it before
        self._session_id = int(origin[0]) if origin else int(time.time())
        self._version = int(origin[1]) if origin else 0
        self._answer = ""  # the last answer: repeated, version and all, while nothing in it changes
        self._joined = False  # its media is in the meeting (taken out and back for a codec change)
        self._timed_out = False
        self._video_kbps: int | None = None  # the room's b= for our video
        self._decodable = VIDEO_RENDITIONS[0]  # the largest composite its H.264 level takes
        self._keyframe_event_at = -1e9
        self._owner = OwnerTask(spec.endpoint_id)
        self._close_task: asyncio.Task[None] | None = None
        self._offered: int | None = None  # m-lines of our own offer, until the room's answer
        target = spec.extra.get("rtp_offer")
        if target is not None:
            self.post(partial(self._send_offer, target if isinstance(target, str) else ""))

    # -- Member ------------------------------------------------------------------------------

    @property
    def streams(self) -> Mapping[str, Stream]:
        if not self.spec.publish:
            return {}
        return {str(i): line.published for i, line in self.lines.items() if line.publishes}

    @property
    def outputs(self) -> Mapping[str, Output]:
        return {str(i): line.output for i, line in self.lines.items()}

    @property
    def connected(self) -> bool:
        return not self.closed and any(line.ports.rtp_dest is not None for line in self.lines.values())

    def request_slots(self, roles: list[str]) -> None:
        """Nothing to offer: a room's composite and mix lines are those of its own offer."""

    def post(self, op: Callable[[], Awaitable[Any]], droppable: bool = False) -> None:
        if not self.closed:
            self._owner.post(op, droppable)

    def schedule_close(self) -> None:
        if self._close_task is None and not self.closed:
            self._close_task = asyncio.get_running_loop().create_task(self._close())

    # -- MediaPeer -----------------------------------------------------------------------------

    async def handle_offer(self, sdp: str) -> str:
        if self.closed:
            raise PeerClosed(f"peer {self.endpoint_id} is closed")
        return cast(str, await self._owner.submit(lambda: self._apply_offer(sdp)))

    async def handle_answer(self, sdp: str) -> None:
        """The room's answer (its ACK's SDP) to the leg's own offer (``PeerExtra["rtp_offer"]``)."""
        if self.closed:
            raise PeerClosed(f"peer {self.endpoint_id} is closed")
        await self._owner.submit(lambda: self._apply_answer(sdp))

    async def add_ice_candidate(self, candidate: dict[str, Any] | None) -> None:
        """Plain RTP has no ICE: nothing to add."""

    async def set_muted(self, kind: str, muted: bool) -> None:
        (self.muted_kinds.add if muted else self.muted_kinds.discard)(kind)
        for line in self.lines.values():  # a camera not yet published too
            if line.kind == kind:
                line.published.set_muted(muted)

    async def request_keyframe(self) -> None:
        """SIP INFO picture_fast_update: a key frame of the composite it receives."""
        for out in self.outputs.values():
            if out.kind == "video" and out.source is not None:
                out.source.request_keyframe()

    async def close(self) -> None:
        if self._close_task is None:
            self._close_task = asyncio.get_running_loop().create_task(self._close())
        await asyncio.shield(self._close_task)

    # -- negotiation ---------------------------------------------------------------------------

    async def _apply_offer(self, sdp: str) -> str:
        offer = parse_offer(sdp)
        address = checked_address(offer, self.host, {p.port for p in self._ports.values()})
        chosen = await self._negotiate(offer)
        locals_ = [self._local(c) for c in chosen]
        answer = build_answer(offer, chosen, locals_, address, session_id=self._session_id, version=self._version + 1)
        return self._sent(answer)

    async def _send_offer(self, target: str) -> None:
        """Our offer to a room whose INVITE had none, to the sink as {"type": "offer", "sdp": ...}."""
        audio_order, video_order = codec_orders(self.spec.extra.get("codecs"), self.video_codecs)
        kinds = 1 if self.spec.extra.get("audio_only") else 2
        for index in range(kinds):
            ports = self._ports[index] = RtpPorts(self.host, f"{self.endpoint_id}/{index}", self._proven)
            await ports.open()
        address = our_address(self.host, target)
        offer = build_offer(
            [self._ports[i].port for i in range(kinds)], audio_order, video_order, address,
            session_id=self._session_id, version=self._version + 1, video_kbps=CAMERA_KBPS,
        )  # fmt: skip
        self._offered = kinds
        await self.events({"type": "offer", "sdp": self._sent(offer)})

    async def _apply_answer(self, sdp: str) -> None:
        answer = parse_offer(sdp)
        if self._offered is None or len(answer.lines) != self._offered:
            raise MediaError("not an answer to the leg's offer (it made none, or the m-lines differ)")
        checked_address(answer, self.host, {p.port for p in self._ports.values()})
        self._offered = None
        await self._negotiate(answer)

    def _sent(self, sdp: str) -> str:
        """``sdp`` as we send it: the last one again, version and all, while nothing in it changed."""
        if sdp.split("\r\n", 2)[2] != self._answer.split("\r\n", 2)[-1]:  # less v= and o=
            self._version += 1  # RFC 3264 §8: a changed SDP has a higher version, the same one not
            self._answer = sdp
        return self._answer

    async def _negotiate(self, offer: RtpOffer) -> list[Chosen | None]:
        """The lines of the room's offer (or answer to ours): codecs, sockets, where we send; in the meeting."""
        extra = self.spec.extra
        chosen = choose(offer, extra.get("codecs"), self.video_codecs)
        chosen = [None if c is None or c.slides else c for c in chosen]  # slides need BFCP: not served
        if extra.get("audio_only"):
            chosen = [c if c is not None and c.kind == "audio" else None for c in chosen]
        if self._needs_rebuild(chosen):
            await self._rebuild(offer, chosen)
        for c in chosen:
            if c is not None:
                self.lines[c.index].update(offer.lines[c.index], c.direction)
        self._timed_out = False
        if self._joined:
            self.meeting.peer_changed(self)  # a room that stopped or resumed sending its camera
        else:
            self._join()
        return chosen

    def _needs_rebuild(self, chosen: list[Chosen | None]) -> bool:
        current = {i: line.chosen for i, line in self.lines.items()}
        wanted = {c.index: c for c in chosen if c is not None}
        if current.keys() != wanted.keys():
            return True
        return any(_media_of(current[i]) != _media_of(c) for i, c in wanted.items())

    async def _rebuild(self, offer: RtpOffer, chosen: list[Chosen | None]) -> None:
        if self._joined:
            self.meeting.remove_peer(self)  # its listener, mix and composite subscription go
            self._joined = False
        old = self.lines
        self.lines = {}
        for line in old.values():
            self._drop_media(line)
        kept = {c.index for c in chosen if c is not None}
        for index in [i for i in self._ports if i not in kept]:
            self._ports.pop(index).close()
        self._set_audio(chosen, offer)
        for c in chosen:
            if c is None:
                continue
            ports = self._ports.get(c.index)
            if ports is None:
                ports = RtpPorts(self.host, f"{self.endpoint_id}/{c.index}", self._proven)
                self._ports[c.index] = ports
                await ports.open()
            previous = old.get(c.index)
            line = LegLine(
                self.endpoint_id,
                c,
                ports,
                keyframe_interval=self.keyframe_interval,
                previous_key=previous.ours if previous is not None else None,
                on_dtmf=self._on_dtmf,
                on_keyframe_wanted=self._on_keyframe_wanted,
                on_first_video=self._on_first_video,
            )
            ports.accept = partial(line.accept, on_feedback=self.meeting.router.on_feedback)
            ports.on_latched = self._bind_lines
            if line.kind == "video":
                line.remb_ceiling = rendition_ceiling_bps(self._decodable)  # its decoder's level
                caps = [b for b in (line.remb_ceiling, self._video_kbps and self._video_kbps * 1000) if b]
                line.output.remb = min(caps) if caps else None  # the room's cap, until it reports
            self.lines[c.index] = line

    def _set_audio(self, chosen: list[Chosen | None], offer: RtpOffer) -> None:
        """The leg's spec: its mix's codec, and the composite rendition its bandwidth takes."""
        extra = cast(dict[str, Any], dict(self.spec.extra))
        audio = next((c for c in chosen if c is not None and c.kind == "audio"), None)
        if audio is not None and audio.codec in TELEPHONY:
            extra["audio_codec"] = audio.codec
        else:
            extra.pop("audio_codec", None)
        video = next((c for c in chosen if c is not None and c.kind == "video"), None)
        self._video_kbps = room_video_kbps(offer, video)
        self._decodable = VIDEO_RENDITIONS[0]
        if video is not None and video.codec == "H264":
            self._decodable = decodable_rendition(video.format.params)
        fitting = fitting_rendition(self._video_kbps) if self._video_kbps is not None else VIDEO_RENDITIONS[0]
        if self._video_kbps is not None or self._decodable != VIDEO_RENDITIONS[0]:
            extra["start_rendition"] = max(fitting, self._decodable, key=VIDEO_RENDITIONS.index)  # the smaller
        self.spec = dataclasses.replace(self.spec, extra=cast(PeerExtra, extra))

    def _bind_lines(self) -> None:
        """A host proved itself (a valid packet): every line whose room address it is may send."""
        for line in self.lines.values():
            line.bind()

    def _join(self) -> None:
        router = self.meeting.router
        for line in self.lines.values():
            router.add_stream(line.published)
            if line.kind in self.muted_kinds:
                line.published.set_muted(True)
        if not self._joined:
            self.meeting.add_peer(self)
            self._joined = True
        self.meeting.peer_changed(self)

    def _drop_media(self, line: LegLine) -> None:
        router = self.meeting.router
        router.release(line.output)
        router.remove_stream(line.published.stream_id)
        line.received.close()

    def _local(self, c: Chosen | None) -> LocalMedia | None:
        if c is None:
            return None
        line = self.lines[c.index]
        return LocalMedia(line.ports.port, line.ours, CAMERA_KBPS if c.kind == "video" else None)

    # -- events ----------------------------------------------------------------------------

    def _notify(self, event: dict[str, Any]) -> None:
        self.post(partial(self.events, event))

    def _on_dtmf(self, digit: str) -> None:
        self._notify({"type": "dtmf", "digit": digit})

    def _on_first_video(self) -> None:
        if self._joined and not self.closed:
            self.meeting.peer_changed(self)  # its camera is a source now

    def _on_keyframe_wanted(self) -> None:
        now = time.monotonic()
        if now - self._keyframe_event_at >= KEYFRAME_EVENT_S:
            self._keyframe_event_at = now
            self._notify({"type": "keyframe_wanted"})

    # -- the node's ticker -----------------------------------------------------------------

    def update_sender_reports(self) -> None:
        """The sender reports go out with the receiver reports (``send_publisher_feedback``): one
        compound RTCP packet per line and second (RFC 3550 §6.1)."""

    def send_publisher_feedback(self, interval: float) -> None:
        if self.closed or not self.lines:
            return
        now = time.monotonic()
        for line in self.lines.values():
            line.send_reports(interval, now)
        held = all(line.chosen.direction == "inactive" for line in self.lines.values())
        last = max(line.ports.last_rx for line in self.lines.values())
        if not held and not self._timed_out and now - last > MEDIA_TIMEOUT_S:
            self._timed_out = True
            log.info("SIP leg %s: no media from the room for %.0f s", self.endpoint_id, now - last)
            self._notify({"type": "media_timeout"})

    # -- shutdown ----------------------------------------------------------------------------

    async def _close(self) -> None:
        self.closed = True
        self.meeting.remove_peer(self)  # the node added it before its first offer
        for line in self.lines.values():
            self._drop_media(line)
        for ports in self._ports.values():
            ports.close()
        self._ports.clear()
        await self._owner.stop()
        if self.on_closed is not None:
            self.on_closed(self)

    def stats(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint_id,
            "transport": "rtp",
            "lines": [line.stats() for line in self.lines.values()],
            "streams": [s.stats() for s in self.streams.values()],
            "outputs": [o.stats() for o in self.outputs.values()],
        }


def _media_of(c: Chosen) -> tuple[Any, ...]:
    """What a line's media objects depend on (not its direction: hold and resume keep them)."""
    return (c.kind, c.codec, c.format, c.dtmf, c.crypto)

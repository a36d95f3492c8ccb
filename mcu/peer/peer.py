"""One endpoint's peer connection on the media node (implements mcu.api.MediaPeer).

aiortc negotiates (ICE, DTLS, SDP with standard codecs and SSRCs); the media itself bypasses
aiortc's RTP objects (see ``mcu.peer.transport``): incoming RTP goes straight to the publisher's
``Stream``, and every send m-line is an ``Output`` written by the router; aiortc's sender only
sends RTCP sender reports for it (its track is idle).

Every SDP operation runs in the peer's owner task (``mcu.peer.owner_task``: one bounded queue,
one task), so negotiations never interleave. The server makes an offer when the meeting needs
more send m-lines (another speaker's audio, a screen share); the client answers with
``handle_answer``. While a server offer is outstanding a client offer is refused (``Glare``):
the client is the polite side and must answer first.

What the peer asks of its meeting is the small ``PeerHost`` protocol (``mcu.meeting.meeting.Meeting``
implements it), so this package imports nothing above the SFU and the bridge's rendition policy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Protocol

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.sdp import candidate_from_sdp

from mcu.peer.cascade_sdp import CASCADE_ROLE, relabel
from mcu.fence import sender_ssrc, set_negotiated_codecs
from mcu.peer.transport import PeerTransport
from mcu.peer.bounded_stop import close_pc
from mcu.peer.errors import Glare, PeerClosed, PeerError
from mcu.peer.owner_task import OwnerTask
from mcu.peer.codec_choice import offer_for_aiortc, plan_answer, prefer_codecs, served_for, served_video_codecs
from mcu.peer.negotiation import MLine, NegotiationError, check_bundle, describe, explain, receives, sends
from mcu.peer.lines import publisher_stream, role_for_client_mline, subscriber_output
from mcu.peer.renegotiation import NegotiatedIds, answer_for_aiortc
from mcu.peer.rtcp import publisher_feedback, update_sender_reports
from mcu.sfu.stream import Stream
from mcu.sfu.subscriber import Output
from mcu.bridge.rendition_policy import media_mode
from mcu.peer.tracks import IdleTrack
from mcu.sfu.router import Router

if TYPE_CHECKING:
    from mcu.api import PeerSpec

log = logging.getLogger("mcu.peer.peer")

# A peer whose connection is not up this long after it was made never will be (an offer with no
# usable candidates, a client that vanished before ICE): closed, so that it holds no place under
# the session caps, no participant entry and no encoder (ICE through TURN on 3G takes seconds)
CONNECT_TIMEOUT_S = 30.0


class PeerHost(Protocol):
    """What a peer asks of the meeting it belongs to."""

    @property
    def router(self) -> Router: ...  # its streams and outputs are registered there

    @property
    def media_policy(self) -> Mapping[str, str]: ...  # link class -> media mode

    def peer_changed(self, peer: LocalPeer) -> None: ...  # new streams or outputs: reroute

    def missing_roles(self, peer: LocalPeer) -> list[str]: ...  # send m-lines to offer

    def remove_peer(self, peer: LocalPeer) -> None: ...  # it is closing


class LocalPeer:
    def __init__(
        self,
        meeting: PeerHost,
        spec: "PeerSpec",
        events: Callable[[dict[str, Any]], Awaitable[None]],
        *,
        keyframe_interval: float = 0.5,
        on_closed: Callable[[LocalPeer], None] | None = None,
    ) -> None:
        self.meeting = meeting
        self.on_closed = on_closed  # after it released everything (the node forgets it)
        self.spec = spec
        self.endpoint_id = spec.endpoint_id
        self.events = events
        # WHIP/WHEP clients cannot take server offers: spec.extra["renegotiate"] = False keeps
        # the peer to the m-lines of its own offer
        self.renegotiate = bool(spec.extra.get("renegotiate", True))
        # the meeting's video codecs in its order of preference (mcu.peer.codec_choice)
        self.video_codecs = served_video_codecs(spec.extra.get("video_codecs"))
        # "sfu" | "mcu" | "both" (mcu.bridge.rendition_policy)
        try:
            self.media_mode = media_mode(spec, meeting.media_policy)
        except ValueError as exc:
            raise PeerError(str(exc)) from None
        self.keyframe_interval = keyframe_interval
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.pc.on("connectionstatechange", self._on_connection_state)
        self.streams: dict[str, Stream] = {}  # by mid
        self.muted_kinds: set[str] = set()
        self.outputs: dict[str, Output] = {}  # by mid
        self.pending_roles: list[str] = []  # roles of offered, not yet answered m-lines
        self.refused_roles: list[str] = []  # roles whose m-line the client refused
        self._slots_queued = False
        self._roles: dict[str, str] = {}  # mid -> output role
        self.transport = PeerTransport(
            spec.endpoint_id, self._on_transport_up, self.schedule_close, meeting.router.on_feedback
        )
        self._offer_outstanding = False
        self._want_offer = False
        self._answered_once = False
        self.negotiated = NegotiatedIds()  # extension ids and payload types, kept for life (#17)
        self._owner = OwnerTask(spec.endpoint_id)
        self.closed = False
        self.congested = False  # set by the meeting from RTCP receiver reports
        self._close_task: asyncio.Task | None = None
        self._connect_deadline = asyncio.get_running_loop().call_later(CONNECT_TIMEOUT_S, self._check_connected)

    # -- MediaPeer API ---------------------------------------------------------------------

    async def handle_offer(self, sdp: str) -> str:
        return await self._submit(lambda: self._apply_offer(sdp))

    async def handle_answer(self, sdp: str) -> None:
        await self._submit(lambda: self._apply_answer(sdp))

    async def add_ice_candidate(self, candidate: dict[str, Any] | None) -> None:
        await self._submit(lambda: self._add_candidate(candidate))

    async def set_muted(self, kind: str, muted: bool) -> None:
        """Chair mute; it also holds for tracks the client adds later (a mute set before the offer)."""
        (self.muted_kinds.add if muted else self.muted_kinds.discard)(kind)
        for stream in list(self.streams.values()):
            if stream.kind == kind:
                stream.set_muted(muted)

    async def request_keyframe(self) -> None:
        """A key frame asked for outside RTCP: from the sources of its video outputs (merged and
        rate limited by each source)."""
        for out in list(self.outputs.values()):
            if out.kind == "video" and out.source is not None:
                out.source.request_keyframe()

    async def close(self) -> None:
        if self._close_task is None:
            self._close_task = asyncio.get_running_loop().create_task(self._close())
        await asyncio.shield(self._close_task)

    # -- owner task ------------------------------------------------------------------------

    async def _submit(self, op: Callable[[], Awaitable[Any]]) -> Any:
        if self.closed:
            raise PeerClosed(f"peer {self.endpoint_id} is closed")
        return await self._owner.submit(op)

    def post(self, op: Callable[[], Awaitable[Any]], droppable: bool = False) -> None:
        """Queue an operation nobody waits for (renegotiation, notifications); a droppable one
        (a speaker notification) is dropped while the queue is half full."""
        if not self.closed:
            self._owner.post(op, droppable)

    @property
    def dropped_notifications(self) -> int:
        return self._owner.dropped_notifications

    # -- negotiation -----------------------------------------------------------------------

    async def _apply_offer(self, sdp: str) -> str:
        if self._offer_outstanding:
            raise Glare("answer the server's offer before making a new one")
        # reads the whole offer once (describe() below cannot fail on it) and refuses, in words,
        # what cannot be served, before aiortc changes anything
        codecs = plan_answer(check_bundle(sdp), self.video_codecs)
        remote = describe(sdp)
        try:  # the answer too: an offer aiortc takes can still make it fail (a line with no direction)
            self._add_transceivers(remote)
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_for_aiortc(sdp, codecs), type="offer"))
            for t in self.pc.getTransceivers():
                if t.mid in codecs:
                    set_negotiated_codecs(t, codecs[t.mid])
            answer = await self.pc.createAnswer()
            await self.pc.setLocalDescription(answer)
        except Exception as exc:
            await self._refused_after_change()
            raise NegotiationError(explain("offer", exc, self.endpoint_id)) from exc
        local = describe(self.pc.localDescription.sdp)
        self._install_hooks()
        for mid in [m for m in self.streams if m not in remote or not sends(remote[m].direction)]:
            stream = self.streams.pop(mid)  # the client stopped sending this track
            self.transport.remove_stream(stream)
            self.meeting.router.remove_stream(stream.stream_id)
        for mid, line in local.items():
            rline = remote.get(mid)
            if rline is None:
                continue
            if self.spec.publish and sends(rline.direction) and mid not in self.streams:
                self._add_stream(mid, line, rline)
            if receives(rline.direction) and mid not in self.outputs:
                role = role_for_client_mline(self, rline, list(self._roles.values()))  # its a=content
                self._add_output(mid, line, role)
        self._answered_once = True
        self.negotiated.learn(sdp, self.pc.localDescription.sdp)
        if self.spec.role == CASCADE_ROLE:  # an edge node: who each upstream line carries
            relabel(self, sdp)
        self.meeting.peer_changed(self)
        return self.pc.localDescription.sdp

    def _add_transceivers(self, remote: dict[str, MLine]) -> None:
        known = {t.mid for t in self.pc.getTransceivers() if t.mid is not None}
        for line in remote.values():
            if line.mid in known:
                continue
            direction = "sendrecv" if receives(line.direction) else "recvonly"
            if not (self.spec.publish and sends(line.direction)):
                direction = "sendonly" if receives(line.direction) else "inactive"
            track = IdleTrack(line.kind) if receives(line.direction) else None
            self.pc.addTransceiver(track or line.kind, direction=direction)  # codecs: set once applied

    async def _refused_after_change(self) -> None:
        """aiortc changed the connection before it refused the offer and cannot roll back, so
        this peer can never negotiate again. A first offer's peer is simply dropped by whoever
        opened it (signaling does); an established one tells its client to open a new peer."""
        if not self._answered_once:
            return
        log.warning("peer %s: a refused offer left it unusable; media_reset", self.endpoint_id)
        try:
            await self.events(
                {
                    "type": "media_reset",
                    "reason": "the offer was refused and the media connection cannot continue; offer again",
                }
            )
        except Exception:  # noqa: BLE001 - the client is gone: closing is all that is left
            self.schedule_close()

    async def _apply_answer(self, sdp: str) -> None:
        if not self._offer_outstanding:
            raise NegotiationError("no server offer is waiting for an answer")
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_for_aiortc(sdp), type="answer"))
        except Exception as exc:
            raise NegotiationError(explain("answer", exc, self.endpoint_id)) from exc
        self._offer_outstanding = False
        self.negotiated.learn(self.pc.localDescription.sdp, sdp)
        remote = describe(sdp)
        for mid, role in list(self._roles.items()):
            if mid in self.outputs:
                continue
            line = remote.get(mid)
            if line is not None and receives(line.direction):
                self._add_output(mid, line, role)
            else:  # the client refused this m-line: never offer that slot again
                self.refused_roles.append(role)
                del self._roles[mid]
        self.pending_roles = []
        self._install_hooks()
        self.meeting.peer_changed(self)
        if self._want_offer:
            self._want_offer = False
            await self._make_offer()

    async def _add_candidate(self, candidate: dict[str, Any] | None) -> None:
        if candidate is None or not candidate.get("candidate"):
            await self.pc.addIceCandidate(None)
            return
        text = candidate["candidate"]
        if text.startswith("candidate:"):
            text = text[len("candidate:") :]
        c = candidate_from_sdp(text)
        c.sdpMid = candidate.get("sdpMid")
        c.sdpMLineIndex = candidate.get("sdpMLineIndex")
        await self.pc.addIceCandidate(c)

    def request_slots(self, roles: list[str]) -> None:
        """The meeting wants more send m-lines for this peer: offer them (in the owner task)."""
        if self.closed or not roles or not self.renegotiate or self._slots_queued:
            return
        if self._owner.full:
            log.warning("peer %s busy; slots %s not offered now", self.endpoint_id, roles)
            return
        self._slots_queued = True  # one queued request at a time; it re-reads what is missing
        self.post(lambda: self._offer_slots(roles))

    async def _offer_slots(self, roles: list[str]) -> None:
        self._slots_queued = False
        missing = self.meeting.missing_roles(self)
        if not missing:
            return
        if self._offer_outstanding or not self._answered_once:
            self._want_offer = True
            return
        await self._make_offer()

    async def _make_offer(self) -> None:
        missing = self.meeting.missing_roles(self)
        if not missing or self.closed:
            return
        for role in missing:
            kind = "audio" if role in ("audio", "mix") else "video"
            t = self.pc.addTransceiver(IdleTrack(kind), direction="sendonly")
            prefer_codecs(t, kind, served_for(kind, self.video_codecs))  # the answer's first is sent
        offer = await self.pc.createOffer()  # aiortc's own ids and payload types: kept as negotiated
        await self.pc.setLocalDescription(RTCSessionDescription(sdp=self.negotiated.keep(offer.sdp), type="offer"))
        new_mids = [t.mid for t in self.pc.getTransceivers()[-len(missing) :]]
        for mid, role in zip(new_mids, missing):
            self._roles[mid] = role
        self.pending_roles = list(missing)
        self._offer_outstanding = True
        try:
            await self.events({"type": "offer", "sdp": self.pc.localDescription.sdp})
        except Exception:
            # the offer is applied locally but never reached the client, and aiortc cannot
            # roll back: the session cannot be negotiated any more, so release it
            log.warning("offer to %s not delivered; closing the peer", self.endpoint_id)
            self.schedule_close()
            raise

    def _add_stream(self, mid: str, local: MLine, remote: MLine) -> None:
        stream = publisher_stream(self, mid, local, remote)
        self.transport.add_stream(
            stream, mid, remote.ssrcs, remote.rtx_ssrcs, local.mid_ext_id, local.payload_type, local.rtx_payload_type
        )
        self.streams[mid] = stream
        if local.kind in self.muted_kinds:
            stream.set_muted(True)
        self.meeting.router.add_stream(stream)

    def _add_output(self, mid: str, line: MLine, role: str) -> None:
        out = subscriber_output(self, mid, line, role)
        self._roles[mid] = role
        self.outputs[mid] = out
        self.transport.add_output(out)

    # -- transport -------------------------------------------------------------------------

    def _install_hooks(self) -> None:
        transceivers = self.pc.getTransceivers()
        if transceivers:
            self.transport.attach(transceivers[0].receiver.transport, sender_ssrc(transceivers[0].sender))

    def _on_transport_up(self) -> None:
        for out in self.outputs.values():
            src = out.source
            if src is not None and not out.live and out in src.waiting:
                src.waiting.remove(out)
                out.source = None  # re-added below: replay of the cached key frame or a PLI
        self.meeting.peer_changed(self)

    # -- shutdown --------------------------------------------------------------------------

    def _on_connection_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            self.schedule_close()

    def _check_connected(self) -> None:
        if not self.closed and self.pc.connectionState != "connected":
            log.info(
                "peer %s not connected %.0f s after it was made (%s); closing it",
                self.endpoint_id,
                CONNECT_TIMEOUT_S,
                self.pc.connectionState,
            )
            self.schedule_close()

    def schedule_close(self) -> None:
        if self._close_task is None and not self.closed:
            self._close_task = asyncio.get_running_loop().create_task(self._close())

    async def _close(self) -> None:
        self.closed = True
        self._connect_deadline.cancel()
        self.meeting.remove_peer(self)
        for out in self.outputs.values():
            self.meeting.router.release(out)
        for mid in list(self.streams):
            self.meeting.router.remove_stream(self.streams[mid].stream_id)
        self.transport.close()
        await self._owner.stop()
        await close_pc(self.pc, self.endpoint_id)
        self.pc.remove_all_listeners()
        if self.on_closed is not None:
            self.on_closed(self)

    def update_sender_reports(self) -> None:
        update_sender_reports(self.transport, self.pc.getTransceivers(), self.outputs)

    def send_publisher_feedback(self, interval: float) -> None:
        """RTCP receiver reports for the peer's published streams, plus REMB for video: a
        browser's congestion control needs them to raise its bitrate (aiortc's own receiver
        never sees the packets, so it cannot report them)."""
        publisher_feedback(self.transport, self.streams.values(), interval)

    @property
    def connected(self) -> bool:
        return self.transport.binding is not None and not self.closed

    def stats(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint_id,
            "streams": [s.stats() for s in self.streams.values()],
            "outputs": [o.stats() for o in self.outputs.values()],
            "unknown_packets": self.transport.unknown_packets,
        }

"""The SIP gateway (#14): room systems' calls in and out of meetings, on the stack of stack.py.

Dial-in (``_incoming``): find the meeting (admission.find_target), decide who calls
(admission.claim_of: digest via the stack's challenge, source addresses), admit it like a terminal
(signaling.auth.policy.admit), open its RTP leg on the meeting's media node
(``PeerExtra["transport"] = "rtp"``), answer the offer (an INVITE without SDP: the leg's offer,
``PeerExtra["rtp_offer"]``, goes in our 200 and the ACK's answer to ``handle_answer``), enter the
room (member.enter_room).
An unknown caller to a meeting with a PIN is answered by a LOBBY leg first (a media room of its
own, audio only: it sees and hears nothing of the meeting), keys the PIN (RFC 4733 or INFO, 20 s), and is
then moved into the meeting by a re-INVITE without SDP (the room offers, the meeting's leg answers
in the ACK). A wrong or missing PIN: BYE. Guessing is limited by pin_guard.PinGuard (tries per
address and meeting in the store, lobbies per address and node).

Dial-out (``dial``, driven by dialout.py): a DELAYED-OFFER INVITE (no SDP): the room offers in its
200 and the leg answers in the ACK, so one ``handle_offer`` serves both directions.

While a call lives (``_run_call``): INFO picture_fast_update -> ``peer.request_keyframe()``; the leg's
``keyframe_wanted`` -> INFO picture_fast_update to the room; ``media_timeout`` -> BYE; a re-INVITE's
offer (hold, codec change) -> ``peer.handle_offer`` again; the room's BYE, the chair's remove
(BYE), a revocation and the meeting's close end it. Refusals: refusals.Refusal (404, 403,
480, 488 with the leg's OfferRefused text as Warning, Vietnamese first: offers.for_room).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import datetime, timezone
from collections.abc import Awaitable, Callable
from typing import Any

from endpoints.model import Endpoint
from mcu.api import MediaPeer, PeerExtra, PeerSpec
from signaling.auth.policy import admit, media_extra
from signaling.auth.sip_digest import SIP_REALM, stored_ha1
from signaling.context import Context
from signaling.errors import ApiError
from signaling.meetings.model import Meeting
from signaling.sip import info as sip_info
from signaling.sip.info import CallEvents, info_handler
from signaling.sip.admission import (
    Target,
    claim_of,
    endpoint_identity,
    find_target,
    from_api_error,
    guest_identity,
    not_open,
    pin_matches,
)
from signaling.sip.dialout import DialOut
from signaling.sip.member import SipMember, enter_room, keep_in_room, leave_room
from signaling.sip.outgoing import dialog_parts
from signaling.sip.offers import answer_offer, answer_offers, for_room, offer_and_take_answer, sdp_version
from signaling.sip.pin_guard import PinGuard
from signaling.sip.refusals import Refusal, refusal
from signaling.sip.stack import SipStack

log = logging.getLogger("giaoban.sip")
RING_S = 60.0  # a dialled room that neither answers nor refuses within this is called again later
WRONG_PIN = 'SIP;cause=403;text="Sai ma PIN"'  # the BYE's Reason (RFC 3326): ASCII, as room displays show it
HANGUP_S = 2.0  # the CANCEL or BYE of a failed dial-out is sent; its answer is awaited this long


class SipGateway:
    def __init__(self, ctx: Context, stack: SipStack | None = None) -> None:
        self.ctx = ctx
        self.settings = ctx.settings.sip
        self.stack = stack or SipStack(self.settings, self._on_invite)
        self.members: dict[str, SipMember] = {}  # session id -> live call
        self._tasks: set[asyncio.Task[Any]] = set()
        self._leaving: set[asyncio.Future[None]] = set()  # leave_room of ended calls: stop() waits for them
        self.dialout = DialOut(self)
        self.pins = PinGuard(ctx.store)

    async def start(self) -> None:
        await self.stack.start()
        log.info("SIP gateway on %s %s:%d", "/".join(self.settings.transports), self.settings.host, self.settings.port)
        await self.dialout.start()

    async def stop(self) -> None:
        await self.dialout.stop()
        for member in list(self.members.values()):
            member.end("server shutting down")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._leaving:  # attendance and presence written before the store closes
            await asyncio.wait(self._leaving, timeout=HANGUP_S)
        await self.stack.stop()

    # REST (signaling.context.SipCalls) ------------------------------------------------------------
    async def call_now(self, occurrence_id: str, endpoint_id: str, by: str) -> None:
        await self.dialout.call_now(occurrence_id, endpoint_id, by)

    async def hang_up(self, occurrence_id: str, endpoint_id: str, by: str) -> None:
        await self.dialout.hang_up(occurrence_id, endpoint_id, by)

    def call_state(self, occurrence_id: str, endpoint_id: str) -> dict[str, Any] | None:
        return self.dialout.status(occurrence_id, endpoint_id)

    # dial-in ------------------------------------------------------------------------------------
    async def _on_invite(self, call: Any) -> None:
        """The stack runs this as a task per INVITE; tracked here so that stop() waits for it."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._incoming(call)
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _incoming(self, call: Any) -> None:
        try:
            await self._admit_incoming(call)
        except Exception as exc:
            no = for_room(exc)
            if no is None:
                log.exception("SIP call failed", extra={"to": call.request_uri_user})
                no = refusal(500, "Server Internal Error", "Lỗi máy chủ", "giaoban: internal error")
            else:
                log.info(
                    "SIP call refused: %s", no, extra={"from": str(call.from_uri)[:80], "to": call.request_uri_user}
                )
            await _reject(call, no)

    async def _admit_incoming(self, call: Any) -> None:
        ctx = self.ctx
        target = await find_target(ctx.meetings, ctx.directory, call.request_uri_user)
        claim = claim_of(ctx.directory, call.from_uri, call.source[0], target)
        if claim is not None and claim.provable:
            if not claim.source_ok:
                raise refusal(
                    403,
                    "Forbidden",
                    f"Địa chỉ {call.source[0]} không được gọi thay điểm cầu {claim.endpoint.id}",
                    f"source address {call.source[0]} is not in endpoint {claim.endpoint.id}'s allowed_sources",
                )
            if claim.auth_user and not await self._digest_ok(call, claim.endpoint):
                return  # the stack sent 401 (the room retries as a new INVITE) or 403
            member = await self._member(endpoint_identity(claim.endpoint), target.meeting, "in")
            return await self._answer_and_run(call, member, target.meeting, claim.endpoint)
        if target.endpoint is not None:
            raise refusal(
                403,
                "Forbidden",
                f"Chỉ thiết bị của điểm cầu {target.endpoint.id} được gọi số này",
                f"only endpoint {target.endpoint.id}'s own room system may dial its id",
            )
        if not target.meeting.pin:
            raise refusal(
                403,
                "Forbidden",
                "Thiết bị không có trong danh bạ và cuộc họp không có mã PIN",
                "caller is not in the directory and the meeting has no PIN",
            )
        await self._pin_caller(call, target)

    async def _digest_ok(self, call: Any, endpoint: Endpoint) -> bool:
        credential = endpoint.credential

        async def ha1(user: str, realm: str, algorithm: str) -> str | None:
            if endpoint.sip is None or user != endpoint.sip.auth_user or realm != SIP_REALM or not credential:
                return None
            return stored_ha1(await self.ctx.store.get("credentials", credential), user, algorithm)

        return await self.stack.challenge(call, SIP_REALM, ha1) is not None

    async def _member(self, identity: Any, meeting: Meeting, direction: str) -> SipMember:
        """Admitted now (invited, not removed, open) or Refusal (480 when not open)."""
        if await self.ctx.meetings.current_occurrence(meeting.id, _now()) is None:
            raise not_open(f"số {meeting.dial_number}", f"meeting {meeting.id} is not open now")
        try:
            meeting, occurrence, role, _ = await admit(self.ctx, identity, meeting.id)
        except ApiError as exc:
            raise from_api_error(exc) from None
        return SipMember(f"sip-{secrets.token_hex(8)}", identity, meeting.id, occurrence.occurrence_id, role, direction)

    async def _answer_and_run(self, call: Any, member: SipMember, meeting: Meeting, endpoint: Endpoint | None) -> None:
        events = CallEvents()
        spec = self._spec(member, meeting, endpoint)
        if not call.offer_sdp:  # a delayed offer (CUCM, Expressway trunks): the leg offers in our 200
            spec.extra["rtp_offer"] = call.source[0]
        member.peer = peer = await self._open_leg(spec, events)
        try:
            if call.offer_sdp:
                await call.answer(await answer_offer(peer, call.offer_sdp))
            else:
                await offer_and_take_answer(call, peer, events)
        except BaseException:  # refused, or the room cancelled meanwhile: no leg is left behind
            await peer.close()
            raise
        await self._run_call(call, member, events)

    async def _pin_caller(self, call: Any, target: Target) -> None:
        meeting, source = target.meeting, call.source[0]
        if await self.ctx.meetings.current_occurrence(meeting.id, _now()) is None:
            raise not_open(f"số {meeting.dial_number}", f"meeting {meeting.id} is not open now")
        if not call.offer_sdp:
            raise refusal(
                488, "Not Acceptable Here", "Cuộc gọi cần có SDP", "an INVITE without an SDP offer is not served"
            )
        with self.pins.lobby(source):
            tries = await self.pins.take_try(source, meeting.id)  # 403 when locked out
            events = CallEvents()
            origin = secrets.randbelow(2**31) + 1  # the o= session id of both legs of this call (RFC 3264 §8)
            digits = await self._lobby(call, events, origin)
        if not isinstance(digits, str) or not pin_matches(meeting, digits):
            log.info("SIP caller gave no or a wrong PIN", extra={"meeting": meeting.id, "source": source})
            await call.hangup(WRONG_PIN)
            return
        await self.pins.right_pin(tries)
        member = await self._member(guest_identity(meeting, call.from_uri), meeting, "in")
        spec = self._spec(member, meeting, None)
        spec.extra["sdp_origin"] = [origin, sdp_version(call.local_sdp)]  # its answer goes on from the lobby's
        member.peer = peer = await self._open_leg(spec, events)
        try:
            await call.reinvite_for_offer(lambda offer: answer_offer(peer, offer))
        except BaseException:
            await peer.close()
            raise
        await self._run_call(call, member, events)

    async def _lobby(self, call: Any, events: CallEvents, origin: int) -> str | None:
        """An audio-only leg of its own (nothing of the meeting) while the caller keys the PIN."""
        lobby_id = f"sip-lobby-{secrets.token_hex(6)}"
        lobby_extra: PeerExtra = {**_rtp_extra(None), "audio_only": True, "sdp_origin": [origin, 0]}  # no video work
        lobby = await self._open_leg(
            PeerSpec(lobby_id, lobby_id, "lobby", "participant", "fibre", True, lobby_extra), events
        )
        try:
            await call.answer(await answer_offer(lobby, call.offer_sdp))
            call.on_info = info_handler(lambda: lobby, events)
            digits: str | None = await _first(events.pin.read(), call.ended.wait())
            return digits
        finally:
            await lobby.close()

    # dial-out -----------------------------------------------------------------------------------
    async def dial(
        self,
        endpoint: Endpoint,
        meeting: Meeting,
        on_member: Callable[[SipMember], None],
        on_up: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    ) -> SipMember:
        """Call the endpoint's room system into the meeting; returns when the call has ended.
        ``on_up`` gets the call's ``dialog_parts`` once it is ACKed (dialout stores them).
        Refusal / MediaError / the stack's errors when it could not be set up."""
        assert endpoint.sip is not None
        member = await self._member(endpoint_identity(endpoint), meeting, "out")
        on_member(member)
        events = CallEvents()
        call = await self.stack.dial(endpoint.sip.uri, from_user=meeting.dial_number or "giaoban", sdp=None)
        member.call = call
        try:
            offer = await _first(call.wait_answered(timeout=RING_S), member.wake.wait())
            if member.ended:  # hung up from the console while it rang
                await call.cancel()
                return member
            if not offer:
                raise refusal(
                    488, "Not Acceptable Here", "Thiết bị không gửi SDP", "the room's 200 carried no SDP offer"
                )
            member.peer = await self._open_leg(self._spec(member, meeting, endpoint), events)
            await call.ack(await answer_offer(member.peer, offer))
            if on_up is not None:
                await on_up(dialog_parts(call))
        except BaseException:
            if member.peer is not None:
                await member.peer.close()
            # bounded: a CANCEL to a room that never answers would wait 32 s, and at shutdown this
            # runs inside a cancelled task
            await _quietly(asyncio.wait_for(call.hangup(), HANGUP_S))
            raise
        await self._run_call(call, member, events)
        return member

    async def bye_dialog(self, parts: dict[str, Any]) -> int:
        """BYE a dead node's call (dialout, on taking a room over); the room's answer."""
        return await self.stack.bye_dialog(parts)

    # a call in the room -------------------------------------------------------------------------
    def _spec(self, member: SipMember, meeting: Meeting, endpoint: Endpoint | None) -> PeerSpec:
        link = str(endpoint.link) if endpoint else "fibre"
        extra: PeerExtra = {**media_extra(meeting, link), **_rtp_extra(endpoint)}
        publish = member.role != "viewer"
        return PeerSpec(meeting.id, member.endpoint_id, member.identity.name, member.role, link, publish, extra)

    async def _open_leg(self, spec: PeerSpec, events: CallEvents) -> MediaPeer:
        if self.ctx.placement is None:
            raise refusal(503, "Service Unavailable", "Máy chủ không có media", "this server runs without a media node")
        return await self.ctx.placement.open_peer(spec, events)

    async def _run_call(self, call: Any, member: SipMember, events: CallEvents) -> None:
        """Room entry, then until the call or the member ends; media and room released after."""
        member.call = call
        peer = member.peer
        assert peer is not None
        events.on_keyframe_wanted = lambda: _quietly(
            call.send_info(sip_info.MEDIA_CONTROL, sip_info.PICTURE_FAST_UPDATE)
        )
        events.on_timeout = lambda: member.end("no RTP from the room for 30 s")
        call.on_info = info_handler(lambda: peer, events)
        call.on_reinvite = answer_offers(peer)  # hold, codec change: the same leg answers
        self.members[member.session_id] = member
        try:
            await enter_room(self.ctx, member)
            meeting = await self.ctx.meetings.get(member.meeting_id)
            occurrence = await self.ctx.meetings.current_occurrence(meeting.id, _now())
            if occurrence is None or not await self.ctx.scheduler.ensure_open(meeting, occurrence):
                member.end("meeting closed")
            log.info("SIP call in meeting", extra={"meeting": member.meeting_id, "endpoint": member.endpoint_id})
            await _first(keep_in_room(self.ctx, member), call.ended.wait())
            if not member.ended:
                member.end("BYE from the room")
        finally:
            self.members.pop(member.session_id, None)
            for task in events.tasks:
                task.cancel()
            if not call.ended.is_set():
                await _quietly(call.hangup())  # removal, revocation, close, timeout: BYE
            leaving = asyncio.ensure_future(leave_room(self.ctx, member))
            self._leaving.add(leaving)
            leaving.add_done_callback(self._leaving.discard)
            await asyncio.shield(leaving)


def _rtp_extra(endpoint: Endpoint | None) -> PeerExtra:
    extra: PeerExtra = {"via": "sip", "transport": "rtp", "renegotiate": False}
    if endpoint is not None and endpoint.sip is not None and endpoint.sip.codecs:
        extra["codecs"] = list(endpoint.sip.codecs)
    return extra


async def _reject(call: Any, no: Refusal) -> None:
    try:
        if call.final_sent:  # refused after the answer (admission after a PIN): BYE is all there is
            await call.hangup()
        else:
            call.reject(no.code, no.reason, warning=no.warning or None)
    except Exception:
        log.exception("SIP refusal could not be sent")


async def _first(*aws: Awaitable[Any]) -> Any:
    """The result of whichever finishes first; the others are cancelled."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        return next(iter(done)).result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _quietly(aw: Awaitable[Any]) -> None:
    try:
        await aw
    except Exception as exc:  # the dialog is gone already: nothing to tell
        log.debug("SIP request not sent: %s", exc)


def _now() -> datetime:
    return datetime.now(timezone.utc)

"""What a connected client can do in a meeting: join/leave, SDP and ICE to the media node, hands,
floor and mutes. Mixed into ``Session``; every method runs on the session's owner task."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import Any

import msgspec

from signaling import metrics
from signaling.auth import audit
from signaling.errors import ApiError, bad_request, forbidden, not_found, offer_error, unavailable
from signaling.guard.ice_candidate import check_candidate
from mcu.api import MediaRetry, PeerExtra, PeerSpec
from signaling.guard.offer_check import check_offer
from signaling.auth.policy import CHAIR_ROLES, admit, media_extra, role_in
from signaling.recording import set_recording
from signaling.protocol import (
    CHAIR_ACTIONS,
    Answer,
    GrantFloor,
    Hello,
    Ice,
    Join,
    Leave,
    Lock,
    LowerHand,
    Mute,
    MuteAll,
    Offer,
    RaiseHand,
    Record,
    Remove,
    RevokeFloor,
    SetLayout,
    server_msg,
)
from signaling.rooms import roster

log = logging.getLogger("giaoban.meeting")


class MeetingActions:
    # provided by Session
    ctx: Any
    identity: Any
    session_id: str
    meeting_id: str | None
    occurrence_id: str | None
    role: str | None
    peer: Any
    _peer_gen: int
    _held: list | None  # media events held back while the client's offer is being answered
    _leaving: asyncio.Future | None
    link: str  # the endpoint's link class, set on join
    media_extra: PeerExtra  # the meeting's media mode for that link class

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    async def handle(self, msg) -> None:
        if isinstance(msg, Hello):  # it has no handler below: a second hello was a KeyError (internal)
            raise bad_request("hello is only the first message; this connection is already signed in")
        if isinstance(msg, Join):
            return await self.join(msg)
        if self.occurrence_id is None:
            raise bad_request(f"join a meeting before sending {msg.__struct_config__.tag}")
        chair_action, meeting_id = isinstance(msg, CHAIR_ACTIONS), self.meeting_id
        if chair_action and self.role not in CHAIR_ROLES:
            raise forbidden(
                f"{msg.__struct_config__.tag} is a chair action; {self.identity.name} is in this meeting as {self.role}"
            )
        handler = {
            Leave: self._on_leave,
            Offer: self._on_offer,
            Answer: self._on_answer,
            Ice: self._on_ice,
            RaiseHand: self._on_hand,
            LowerHand: self._on_hand,
            GrantFloor: self._on_grant,
            RevokeFloor: self._on_revoke,
            Mute: self._on_mute,
            MuteAll: self._on_mute_all,
            Lock: self._on_lock,
            Remove: self._on_remove,
            SetLayout: self._on_layout,
            Record: self._on_record,
        }[type(msg)]
        await handler(msg)
        if chair_action:  # audited once done, as REST changes are: a refused action leaves no trace
            fields = {k: v for k, v in msgspec.structs.asdict(msg).items() if k not in ("v", "id")}
            # shielded: the chair hanging up right after the action must not lose its trace
            await asyncio.shield(
                audit.record(self.ctx.store, self.identity, msg.__struct_config__.tag, meeting_id, **fields)
            )

    # --- join / leave ----------------------------------------------------------------------------
    async def join(self, msg: Join) -> None:
        meeting, occurrence, role, state = await admit(self.ctx, self.identity, msg.meeting_id)
        if self.occurrence_id:
            await self.leave_meeting(reason="joined another meeting")
        self.meeting_id, self.occurrence_id, self.role = meeting.id, occurrence.occurrence_id, role
        # from here a meeting_closed reaches this session; the occurrence must be one it can close
        opened = False
        try:
            opened = await self.ctx.scheduler.ensure_open(meeting, occurrence)
        finally:
            if not opened:  # not open now, or the store failed: this session has joined nothing
                self.meeting_id = self.occurrence_id = self.role = None
        if not opened:
            raise not_found(f"meeting {meeting.id} is not open now; see its schedule")
        self.link = str(self.identity.endpoint.link) if self.identity.endpoint else "fibre"
        self.media_extra = media_extra(meeting, self.link)
        await self.ctx.rooms.enter(self.occurrence_id, self, self.member_info())
        if self.identity.kind != "operator":
            await self.ctx.meetings.record_join(
                self.occurrence_id, self.identity.endpoint_id, self.now(), via=self.identity.kind
            )
        await self.ctx.sessions.refresh_presence(self)
        metrics.PARTICIPANTS.inc()
        log.info("joined", extra=self.log_extra() | {"role": role})
        participants = await self.ctx.rooms.participants(self.occurrence_id, recent=True)
        await self.deliver(
            server_msg(
                "joined",
                msg.id,
                meeting_id=meeting.id,
                occurrence_id=self.occurrence_id,
                title=meeting.title,
                role=role,
                participants=roster(participants),
                floor=state["floor"],
                hands=state["hands"],
                muted=state["muted"].get(self.identity.endpoint_id, {}),
                media=self.ctx.placement is not None,
                layout=state["layout"],
            )
        )
        self.ctx.rooms.participants_changed(self.occurrence_id)

    def member_info(self) -> dict[str, Any]:
        ident = self.identity
        info = {"endpoint_id": ident.endpoint_id, "name": ident.name, "role": self.role, "kind": ident.kind}
        if ident.endpoint is not None:
            info["tier"] = str(ident.endpoint.tier)
        return info

    async def leave_meeting(self, reason: str) -> None:
        """Leave the current meeting. The release runs shielded, so a disconnect that cancels the
        owner task mid-leave cannot leave a stale participant entry or an open attendance record."""
        occ, self.occurrence_id = self.occurrence_id, None
        if occ is None:
            return
        self._leaving = asyncio.ensure_future(self._release(occ, reason))
        await asyncio.shield(self._leaving)

    async def _release(self, occ: str, reason: str) -> None:
        peer, self.peer = self.peer, None
        if peer is not None:
            await peer.close()
        await self.ctx.rooms.exit(occ, self.session_id)
        if self.identity.kind != "operator":
            await self.ctx.meetings.record_leave(occ, self.identity.endpoint_id, self.now())
        metrics.PARTICIPANTS.dec()
        log.info("left", extra=self.log_extra() | {"reason": reason})
        await self.deliver(server_msg("left", meeting_id=self.meeting_id, reason=reason))
        self.meeting_id = self.role = None
        self.ctx.rooms.participants_changed(occ)

    async def finish_leaving(self) -> None:
        """Wait for a release that a cancelled leave started (called by Session.stop)."""
        if self._leaving is not None:
            await asyncio.gather(self._leaving, return_exceptions=True)

    async def _on_leave(self, msg: Leave) -> None:
        await self.leave_meeting(reason="left")

    async def open_meetings_for_me(self) -> list[dict[str, Any]]:
        """meeting_opened for every meeting open now that this client may join (after a reconnect)."""
        events = []
        for meeting in await self.ctx.meetings.list(active_only=True):
            try:
                role_in(self.ctx.meetings, self.identity, meeting)
            except ApiError:
                continue
            occ = await self.ctx.meetings.current_occurrence(meeting.id, self.now())
            if occ is not None:
                events.append(
                    server_msg(
                        "meeting_opened",
                        meeting_id=meeting.id,
                        occurrence_id=occ.occurrence_id,
                        title=meeting.title,
                        starts_at=occ.starts_at.isoformat(),
                        ends_at=occ.ends_at.isoformat(),
                    )
                )
        return events

    # --- media ---------------------------------------------------------------------------------
    async def _ensure_peer(self):
        if self.ctx.placement is None:
            raise unavailable("this server runs without a media node (media: none)")
        if self.peer is None:
            room = await self.ctx.rooms.state(self.occurrence_id)  # a node that (re)opens the meeting applies it
            extra: PeerExtra = {**self.media_extra, "floor": room["floor"], "layout": room["layout"]}
            spec = PeerSpec(
                self.meeting_id,
                self.identity.endpoint_id,
                self.identity.name,
                self.role,
                self.link,
                publish=self.role != "viewer",
                extra=extra,
            )
            self._peer_gen += 1
            gen = self._peer_gen
            self.peer = await self.ctx.placement.open_peer(spec, lambda event: self._media_event(event, gen))
            for kind, muted in room["muted"].get(self.identity.endpoint_id, {}).items():
                if muted:  # a chair mute holds on the new peer too (after a move to another media node)
                    await self.peer.set_muted(kind, True)
        return self.peer

    async def _media_event(self, event: dict[str, Any], gen: int) -> None:
        if event["type"] == "media_reset":  # the peer's media node (or its cascade origin) is gone
            self.enqueue(lambda: self._media_reset(event, gen))
            return
        if gen != self._peer_gen:
            return  # a closed peer's offer or candidate would confuse the client's new connection
        fields = {k: v for k, v in event.items() if k != "type"}  # the dict is shared between peers
        msg = server_msg(event["type"], **fields)
        if self._held is not None:
            self._held.append(msg)  # the client's offer is being answered: after the answer
        else:
            await self.deliver(msg)

    async def _media_reset(self, event: dict[str, Any], gen: int) -> None:
        """Drop the lost peer and tell the client to offer again: the next offer opens a peer on a
        live node (the meeting is re-pinned if its node died)."""
        if gen != self._peer_gen or self.peer is None:
            return  # an older peer's news; the client already moved on
        if event.get("lost_node"):
            self.ctx.placement.node_lost(event["lost_node"])
        peer, self.peer = self.peer, None
        await peer.close()
        metrics.MEDIA_RESETS.inc()
        log.warning("media reset", extra=self.log_extra() | {"reason": event.get("reason")})
        await self.deliver(server_msg("media_reset", meeting_id=self.meeting_id, reason=event.get("reason", "")))

    async def _on_offer(self, msg: Offer) -> None:
        """An offer's error says whether to offer again ("retry") or not ("offer_refused")."""
        try:
            await self._answer_offer(msg)
        except Exception as exc:
            api = offer_error(exc)
            if api is None:
                raise
            raise api from exc

    async def _answer_offer(self, msg: Offer) -> None:
        """The answer goes out before anything the peer sends meanwhile (its own offer for more
        slots, trickled candidates): a client in have-local-offer cannot take an offer yet."""
        check_offer(msg.sdp)  # an offer without usable media would only make a phantom media peer
        fresh = self.peer is None
        peer = await self._ensure_peer()
        self._held = []
        try:
            try:
                answer = await peer.handle_offer(msg.sdp)
            except Exception as exc:
                if fresh and not isinstance(exc, MediaRetry) and self.peer is peer:
                    await self._drop_refused_peer(peer)
                raise
            await self.deliver(server_msg("answer", msg.id, sdp=answer))
        finally:
            held, self._held = self._held, None
            for event in held:
                await self.deliver(event)

    async def _drop_refused_peer(self, peer) -> None:
        """aiortc cannot roll back an offer it half-applied, so the peer its first offer made is
        dropped: the client's next offer on this WebSocket opens a fresh one. (An established
        peer keeps its media; the media node sends media_reset if a refused offer broke it.)"""
        self.peer = None
        self._peer_gen += 1  # events of the dropped peer are stale from here on
        await peer.close()

    async def _on_answer(self, msg: Answer) -> None:
        if self.peer is None:
            raise bad_request("no server offer is waiting for an answer")
        await self.peer.handle_answer(msg.sdp)

    async def _on_ice(self, msg: Ice) -> None:
        if self.peer is None:
            raise bad_request("send an offer before ICE candidates")
        if msg.candidate != "":
            check_candidate(msg.candidate)  # garbage is the client's error (400), not the media node's (internal)
            if msg.sdp_mid is None and msg.sdp_mline_index is None:
                raise bad_request("ice: give sdp_mid or sdp_mline_index with a candidate", "sdp_mid")
        cand = (
            None
            if msg.candidate == ""
            else {"candidate": msg.candidate, "sdpMid": msg.sdp_mid, "sdpMLineIndex": msg.sdp_mline_index}
        )
        await self.peer.add_ice_candidate(cand)

    # --- hands, floor, mutes -----------------------------------------------------------------
    async def _on_hand(self, msg) -> None:
        me, raised = self.identity.endpoint_id, isinstance(msg, RaiseHand)
        if raised and self.role == "viewer":
            raise forbidden("viewers cannot ask for the floor")

        def change(room):
            if raised and me not in room["hands"]:
                room["hands"].append(me)
            if not raised and me in room["hands"]:
                room["hands"].remove(me)

        room = await self.ctx.rooms.update(self.occurrence_id, change)
        await self.ctx.rooms.publish(
            self.occurrence_id,
            server_msg(
                "hand", endpoint_id=me, name=self.identity.name, raised=raised, hands=room["hands"], at=time.time()
            ),
        )

    async def _member(self, endpoint_id: str) -> dict[str, Any]:
        for p in await self.ctx.rooms.participants(self.occurrence_id):
            if p["endpoint_id"] == endpoint_id:
                return p
        raise not_found(f"endpoint {endpoint_id} is not in this meeting")

    async def _on_grant(self, msg: GrantFloor) -> None:
        member = await self._member(msg.endpoint_id)

        def change(room):
            room["floor"] = msg.endpoint_id
            if msg.endpoint_id in room["hands"]:
                room["hands"].remove(msg.endpoint_id)
            room["muted"].pop(msg.endpoint_id, None)

        room = await self.ctx.rooms.update(self.occurrence_id, change)
        if self.ctx.placement is not None:
            await self.ctx.placement.set_floor(self.meeting_id, msg.endpoint_id)
        await self.ctx.rooms.publish(
            self.occurrence_id,
            server_msg(
                "floor",
                msg.id,
                endpoint_id=msg.endpoint_id,
                name=member["name"],
                by=self.identity.name,
                hands=room["hands"],
            ),
        )

    async def _on_revoke(self, msg: RevokeFloor) -> None:
        await self.ctx.rooms.update(self.occurrence_id, lambda room: room.update(floor=None))
        if self.ctx.placement is not None:
            await self.ctx.placement.set_floor(self.meeting_id, None)
        await self.ctx.rooms.publish(
            self.occurrence_id, server_msg("floor", msg.id, endpoint_id=None, by=self.identity.name)
        )

    async def _on_mute(self, msg: Mute) -> None:
        await self._member(msg.endpoint_id)
        await self._set_muted([msg.endpoint_id], msg.kind, msg.muted, msg.id)

    async def _on_mute_all(self, msg: MuteAll) -> None:
        room = await self.ctx.rooms.state(self.occurrence_id)
        targets = {
            p["endpoint_id"]
            for p in await self.ctx.rooms.participants(self.occurrence_id)
            if p["role"] not in CHAIR_ROLES and p["endpoint_id"] != room["floor"]
        }
        await self._set_muted(sorted(targets), "audio", msg.muted, msg.id)

    async def _set_muted(self, endpoint_ids: list[str], kind: str, muted: bool, ref: str | None) -> None:
        def change(room):
            for ep in endpoint_ids:
                room["muted"].setdefault(ep, {})[kind] = muted

        await self.ctx.rooms.update(self.occurrence_id, change)
        for ep in endpoint_ids:
            await self.ctx.rooms.publish(
                self.occurrence_id,
                server_msg("mute_request", ref, to=ep, endpoint_id=ep, kind=kind, muted=muted, by=self.identity.name),
            )

    async def _on_lock(self, msg: Lock) -> None:
        await self.ctx.rooms.update(self.occurrence_id, lambda room: room.update(locked=msg.locked))
        await self.ctx.rooms.publish(
            self.occurrence_id, server_msg("locked", msg.id, locked=msg.locked, by=self.identity.name)
        )

    async def _on_layout(self, msg: SetLayout) -> None:
        """The composite's layout; kept in the room so a media node (re)starting applies it too."""
        await self.ctx.rooms.update(self.occurrence_id, lambda room: room.update(layout=msg.layout))
        if self.ctx.placement is not None:
            await self.ctx.placement.set_layout(self.meeting_id, msg.layout)
        await self.ctx.rooms.publish(
            self.occurrence_id, server_msg("layout", msg.id, layout=msg.layout, by=self.identity.name)
        )

    async def _on_record(self, msg: Record) -> None:
        result = await set_recording(self.ctx, self.meeting_id, msg.on)
        await self.ctx.rooms.publish(
            self.occurrence_id,
            server_msg("recording", msg.id, on=msg.on, by=self.identity.name, recording_id=result.get("id")),
        )

    async def _on_remove(self, msg: Remove) -> None:
        member = await self._member(msg.endpoint_id)
        if member["role"] in CHAIR_ROLES:
            raise forbidden("the chair and operators cannot be removed")

        def change(room):
            if msg.endpoint_id not in room["removed"]:
                room["removed"].append(msg.endpoint_id)
            if msg.endpoint_id in room["hands"]:
                room["hands"].remove(msg.endpoint_id)

        await self.ctx.rooms.update(self.occurrence_id, change)
        # every node ends the endpoint's sessions here (WebSocket, WHIP, WHEP): media first
        await self.ctx.rooms.publish(
            self.occurrence_id,
            server_msg("removed", msg.id, to=msg.endpoint_id, endpoint_id=msg.endpoint_id, by=self.identity.name),
        )
        await self.ctx.rooms.release_floor(
            self.occurrence_id, self.meeting_id, msg.endpoint_id, self.identity.name, self.ctx.placement
        )

    async def apply_mute(self, msg: dict[str, Any]) -> None:
        """A mute_request addressed to this endpoint: the media node stops forwarding too."""
        if self.peer is not None:
            await self.peer.set_muted(msg["kind"], msg["muted"])

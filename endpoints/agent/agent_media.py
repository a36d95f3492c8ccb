"""The agent's side of one meeting's media: open the peer after ``joined``, relay SDP, and
rejoin when the media path fails. Mixed into ``Agent``; every method runs on its owner task
(except ``_negotiate``, a tracked task that waits for the answer the owner task delivers)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

from endpoints.agent.connection import NotConnected
from endpoints.agent.media import MediaError, MeetingPeer
from endpoints.agent.sources import Sources, open_screen


class ShareUnavailable(RuntimeError):
    """Sharing cannot start here (no ``screen`` source set, or it does not open): the operator fixes it."""


class MediaActions:
    # provided by Agent
    cfg: Any
    conn: Any
    log: Any
    peer: MeetingPeer | None
    want: str | None
    muted: dict[str, bool]
    meeting: dict[str, Any] | None
    sharing_in: Any  # the occurrence whose slides this room sends: shared again after a media rejoin
    lost_at: float | None
    _offer_ref: str | None
    _media_failures: int
    _stopped: bool

    def post(self, action: Callable[[], Awaitable[Any]]) -> None: ...

    def _spawn(self, coro) -> None: ...

    async def _join(self, meeting_id: str, why: str) -> None: ...

    async def _send_media(self, type_: str, **fields: Any) -> None:
        ref = await self.conn.send(type_, **fields)
        if type_ == "offer":
            self._offer_ref = ref

    async def _open_peer(self, meeting_id: str) -> None:
        try:
            sources = Sources(self.cfg.video, self.cfg.audio, self.cfg.size, self.cfg.fps)
        except Exception as exc:
            self.log.error(f"Không mở được camera/micrô: {exc}", "media source failed", meeting=meeting_id)
            return
        for kind, muted in self.muted.items():
            sources.set_muted(kind, muted)
        holder: list[MeetingPeer] = []
        peer = MeetingPeer(
            meeting_id,
            sources,
            self._send_media,
            self.log,
            lambda reason: self.post(lambda: self._media_failed(holder[0], reason)),
            self.cfg.record_dir,
            self.cfg.join_timeout_s,
        )
        holder.append(peer)
        self.peer = peer
        self._spawn(self._negotiate(peer))

    async def _negotiate(self, peer: MeetingPeer) -> None:
        try:
            await peer.start()
            deadline = time.monotonic() + self.cfg.join_timeout_s
            while peer.connected_at is None and time.monotonic() < deadline and peer is self.peer:
                await asyncio.sleep(0.1)
            if peer.connected_at is None and peer is self.peer:
                raise MediaError(f"media not connected within {self.cfg.join_timeout_s:g} s")
            if peer is self.peer:
                self._media_failures = 0
                await self._share_again(peer)
        except Exception as exc:  # no answer, refused offer, bad SDP, lost socket: all end in a rejoin
            if peer is self.peer:
                reason = str(exc) if isinstance(exc, (MediaError, NotConnected)) else f"{type(exc).__name__}: {exc}"
                self.post(lambda: self._media_failed(peer, reason))

    async def _media_failed(self, peer: MeetingPeer, reason: str) -> None:
        if peer is not self.peer or self.want is None or not self.conn.connected or self._stopped:
            return  # an old peer, or the connection is down (the rejoin after reconnect covers it)
        self._media_failures += 1
        delay = min(self.cfg.backoff_max_s, self.cfg.backoff_min_s * 2 ** (self._media_failures - 1))
        self.log.warning(
            f"Mất hình/tiếng ({reason}); vào lại cuộc họp sau {delay:.1f} giây",
            "media lost, rejoining",
            meeting=self.want,
        )
        await self._close_peer()
        self.lost_at = time.monotonic()
        self._spawn(self._later(delay, self._media_rejoin))

    async def _later(self, delay: float, action: Callable[[], Awaitable[Any]]) -> None:
        await asyncio.sleep(delay)
        self.post(action)

    async def _media_rejoin(self) -> None:
        if self.want is not None and self.peer is None and self.conn.connected:
            await self._join(self.want, "media rejoin")

    async def _close_peer(self) -> None:
        peer, self.peer = self.peer, None
        if peer is not None:
            await peer.close()

    async def _on_media_reset(self, msg: dict[str, Any]) -> None:
        """The server lost our media node (or its cascade link): still in the meeting, so a new
        peer connection and offer at once; the server places it on a live node."""
        if self.want is None or msg.get("meeting_id") != self.want or self._stopped:
            return
        self.log.warning(
            f"Máy chủ hình/tiếng thay đổi ({msg.get('reason', '')}); kết nối lại hình/tiếng",
            "media reset by the server",
            meeting=self.want,
        )
        await self._close_peer()
        await self._open_peer(self.want)

    async def set_sharing(self, on: bool) -> bool:
        """From the control API: send the ``screen`` source as the meeting's slides, or stop.
        Runs on the caller's task, not the owner task (which delivers the answer it waits for).
        Returns whether anything changed."""
        peer = self.peer
        if peer is None or peer.connected_at is None:
            raise NotConnected("not in a meeting with media")
        if not on:
            self.sharing_in = None
            return await peer.stop_share()
        await self._share_on(peer)
        self.sharing_in = self._occurrence()
        return True

    def _occurrence(self) -> Any:
        meeting = self.meeting or {}
        return meeting.get("occurrence_id") or meeting.get("id")

    async def _share_on(self, peer: MeetingPeer) -> None:
        if self.cfg.screen == "none":
            raise ShareUnavailable("chưa cấu hình nguồn chia sẻ tài liệu (screen: none) (no screen source is set)")
        try:
            gate = open_screen(self.cfg.screen, self.cfg.size, self.cfg.fps)
        except Exception as exc:
            self.log.error(
                f"Không mở được nguồn chia sẻ {self.cfg.screen}: {exc}", "screen source failed", meeting=self.want
            )
            raise ShareUnavailable(f"không mở được nguồn chia sẻ {self.cfg.screen} (cannot open it): {exc}") from None
        await peer.share(gate)

    async def _share_again(self, peer: MeetingPeer) -> None:
        """A new peer connection in the occurrence the room was sharing in: share on it too."""
        if self.sharing_in is None or self.sharing_in != self._occurrence():
            return
        self.log.info("Chia sẻ lại tài liệu trên kết nối mới", "sharing resumed", meeting=self.want)
        try:
            await self._share_on(peer)
        except Exception as exc:  # the media stays up without the slides; the room may press again
            self.sharing_in = None
            self.log.warning(f"Không chia sẻ lại được tài liệu: {exc}", "sharing not resumed", meeting=self.want)

    async def _on_offer(self, msg: dict[str, Any]) -> None:
        if self.peer is not None:
            await self.peer.on_offer(msg["sdp"])

    async def _on_answer(self, msg: dict[str, Any]) -> None:
        if self.peer is not None:
            self.peer.on_answer(msg["sdp"])

    async def _on_ice(self, msg: dict[str, Any]) -> None:
        if self.peer is not None:
            await self.peer.on_ice(msg)

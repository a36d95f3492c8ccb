"""The room-terminal agent: joins meetings by itself, keeps media up, obeys the chair.

Everything that changes the agent's state runs on one owner task fed by a queue (server
messages, connection up/down, media failures, control-API actions), so joins, SDP and mutes
never interleave. Policy:

* ``meeting_opened`` -> join it, unless already in (or joining) a meeting;
* connection back after a loss -> send ``join`` for the meeting it was in at once (no need to
  wait for ``meeting_opened``); the server gives it a fresh media peer;
* media failure (peer connection failed/closed, no answer, not connected in time) -> ``join``
  the same meeting again, which makes the server drop the old media peer (aiortc cannot ICE-restart),
  with a growing delay if it keeps failing;
* ``meeting_closed``/``removed`` -> leave media; a removed terminal does not rejoin that occurrence.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

from mcu.fence import check as check_fence
from mcu.peer.ice import HostPin, pin_host_addresses
from mcu.peer.bounded_stop import cancel_and_wait, finish_all
from mcu.peer.udp_guard import install as install_udp_guard

from endpoints.agent.config import AgentConfig
from endpoints.agent.connection import AuthError, Connection, NotConnected
from endpoints.agent.control import ControlServer
from endpoints.agent.agent_media import MediaActions
from endpoints.agent.media import MeetingPeer
from endpoints.agent.oplog import OpLog


class Agent(MediaActions):
    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self.log = OpLog(cfg.data_dir, cfg.endpoint, cfg.log_level)
        self.conn = Connection(cfg, self.log, self._on_message, self._on_up, self._on_down)
        self.identity: dict[str, Any] = {}
        self.open_meetings: dict[str, dict[str, Any]] = {}  # meeting id -> meeting_opened
        self.opened_at: dict[str, float] = {}  # meeting id -> monotonic time meeting_opened arrived
        self.titles: dict[str, str] = {}  # meeting id -> title, for the log
        self._seen: set[Any] = set()  # occurrence ids already announced in the log
        self.want: str | None = None  # the meeting the terminal is in or is (re)joining
        self.meeting: dict[str, Any] | None = None  # from joined
        self.refused: set[str] = set()  # occurrence ids/meeting ids it must not auto-join
        self.floor: str | None = None
        self.hands: list[str] = []
        self.muted = {"audio": False, "video": False}
        self.participants = 0
        self.peer: MeetingPeer | None = None
        self.sharing_in: Any = None  # occurrence id while the room shares its document (see set_sharing)
        self.lost_at: float | None = None  # monotonic time of the last connection loss
        self.timings: dict[str, list[float]] = {"join_after_open_s": [], "back_after_loss_s": []}
        self._join_ref: str | None = None
        self._offer_ref: str | None = None
        self._media_failures = 0
        self._inbox: asyncio.Queue = asyncio.Queue(1000)
        self._tasks: set[asyncio.Task] = set()
        self._owner: asyncio.Task | None = None
        self._conn_task: asyncio.Task | None = None
        self._stopped = False
        self.control: ControlServer | None = None
        self._ice_pin: HostPin | None = None
        self._left: asyncio.Future | None = None  # set by stop(): resolved by the server's 'left'

    # --- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Log in once (wrong credentials raise AuthError here), then run in the background."""
        self.log.info(f"Khởi động điểm cầu {self.cfg.endpoint}, máy chủ {self.cfg.server}", "agent starting")
        check_fence()  # the agent's media uses private hooks of aiortc and aioice too
        install_udp_guard()  # the room's ICE ports face the network too: a stray datagram must not end its media
        if self.cfg.ice_host and self._ice_pin is None:
            self._ice_pin = pin_host_addresses([self.cfg.ice_host])  # same hook as the media node
        try:
            await self.conn.login()
        except AuthError:
            raise
        except Exception as exc:  # the server may be down at boot: keep trying in the background
            self.log.warning(f"Chưa đăng nhập được máy chủ: {exc}; sẽ thử lại", "server not reachable yet")
        self._owner = asyncio.get_running_loop().create_task(self._run_owner(), name=f"agent-owner:{self.cfg.endpoint}")
        self._conn_task = self.conn.start()
        if self.cfg.control_port >= 0:
            self.control = ControlServer(self, self.cfg.control_host, self.cfg.control_port)
            await self.control.start()

    async def wait(self) -> None:
        """Until the connection task ends; it only ends with an error (AuthError: fix the config)."""
        assert self._conn_task is not None
        await asyncio.shield(self._conn_task)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.control is not None:
            await self.control.stop()
        if self.meeting is not None and self.conn.connected:
            # leave and wait for 'left' (briefly) so the server records the leave before the socket goes
            self._left = asyncio.get_running_loop().create_future()
            try:
                await self.conn.send("leave")
                await asyncio.wait_for(asyncio.shield(self._left), 2.0)
            except (NotConnected, ConnectionError, asyncio.TimeoutError):
                pass
        await self.conn.stop()
        await cancel_and_wait([self._owner, *self._tasks], "the agent")
        await self._close_peer()
        await finish_all()  # a peer close the owner task had begun when it was cancelled runs on: let it end
        if self._ice_pin is not None:
            self._ice_pin.release()
            self._ice_pin = None
        self.log.info("Đã dừng điểm cầu", "agent stopped")
        self.log.close()

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- the owner task ----------------------------------------------------------------------------
    def post(self, action: Callable[[], Awaitable[Any]]) -> None:
        try:
            self._inbox.put_nowait(action)
        except asyncio.QueueFull:
            self.log.error("Hàng đợi đầy; bỏ qua một thao tác", "inbox full")

    async def _run_owner(self) -> None:
        while True:
            action = await self._inbox.get()
            try:
                await action()
            except asyncio.CancelledError:
                raise
            except NotConnected:
                pass  # the reconnect logic takes over
            except Exception as exc:
                self.log.error(f"Lỗi xử lý: {exc}", "handler failed", meeting=self.want)
                self.log.logger.debug("handler failed", exc_info=True)

    def _on_message(self, msg: dict[str, Any]) -> None:
        self.post(lambda: self._handle(msg))

    def _on_up(self, welcome: dict[str, Any]) -> None:
        self.post(lambda: self._connected(welcome))

    def _on_down(self, reason: str) -> None:
        if self._stopped:
            return
        self.lost_at = time.monotonic()
        self.log.warning("Mất kết nối máy chủ", "connection lost", reason=reason, meeting=self.want)
        self.post(self._disconnected)

    # --- connection ------------------------------------------------------------------------------
    async def _connected(self, welcome: dict[str, Any]) -> None:
        self.identity = welcome.get("identity", {})
        after = f" sau {time.monotonic() - self.lost_at:.1f} giây" if self.lost_at else ""
        self.log.info(f"Đã kết nối máy chủ{after}", "connected", node=welcome.get("node"))
        self.open_meetings.clear()  # the server lists every open meeting again right after welcome
        if self.want:
            await self._join(self.want, "rejoin")
        else:
            self.lost_at = None  # nothing to rejoin: the next join is not a recovery

    async def _disconnected(self) -> None:
        self.meeting = None
        self._join_ref = None
        await self._close_peer()  # the server has dropped its side of it already

    # --- meetings --------------------------------------------------------------------------------
    async def _join(self, meeting_id: str, why: str) -> None:
        self.want = meeting_id
        ref = self._join_ref = await self.conn.send("join", meeting_id=meeting_id)
        self.log.info(f"Đang vào cuộc họp {self._title(meeting_id)}", why, meeting=meeting_id)
        self._spawn(self._later(self.cfg.join_timeout_s, lambda: self._join_watchdog(ref)))

    async def _join_watchdog(self, ref: str) -> None:
        if self._join_ref == ref and self.want is not None and self.conn.connected:
            self.log.warning("Máy chủ chưa trả lời yêu cầu vào họp; thử lại", "join timed out", meeting=self.want)
            await self._join(self.want, "join retry")

    def _title(self, meeting_id: str) -> str:
        return self.titles.get(meeting_id) or meeting_id

    async def _join_next(self) -> None:
        if self.want is not None or self._stopped:
            return
        candidates = [
            m
            for m in self.open_meetings.values()
            if m["meeting_id"] not in self.refused and m.get("occurrence_id") not in self.refused
        ]
        if candidates:
            first = min(candidates, key=lambda m: m.get("starts_at", ""))
            await self._join(first["meeting_id"], "auto join")

    async def _handle(self, msg: dict[str, Any]) -> None:
        handler = getattr(self, "_on_" + str(msg.get("type")), None)
        if handler is not None:
            await handler(msg)

    async def _on_meeting_opened(self, msg: dict[str, Any]) -> None:
        mid = msg["meeting_id"]
        self.titles[mid] = msg.get("title") or mid
        if msg.get("occurrence_id") not in self._seen:
            self._seen.add(msg.get("occurrence_id"))
            self.opened_at[mid] = time.monotonic()
            self.log.info(
                f"Cuộc họp {msg.get('title', mid)} đã mở", "meeting opened", meeting=mid, starts_at=msg.get("starts_at")
            )
        self.open_meetings[mid] = msg
        await self._join_next()

    async def _on_meeting_closed(self, msg: dict[str, Any]) -> None:
        mid = msg.get("meeting_id")
        title = msg.get("title") or self._title(mid)
        self.open_meetings.pop(mid, None)
        if mid == self.want:
            self.log.info(f"Cuộc họp {title} đã kết thúc", "meeting closed", meeting=mid, reason=msg.get("reason"))
            self.want, self.meeting, self.floor, self.hands = None, None, None, []
            await self._close_peer()
            await self._join_next()

    async def _on_joined(self, msg: dict[str, Any]) -> None:
        mid = msg["meeting_id"]
        now = time.monotonic()
        self.want, self._join_ref, self.meeting = (
            mid,
            None,
            {"id": mid, "title": msg.get("title"), "occurrence_id": msg.get("occurrence_id"), "role": msg.get("role")},
        )
        self.floor, self.hands = msg.get("floor"), list(msg.get("hands") or [])
        self.participants = len(msg.get("participants") or [])
        server_muted = msg.get("muted") or {}
        self.muted = {k: bool(server_muted.get(k, False)) for k in ("audio", "video")}
        extra: dict[str, Any] = {"meeting": mid, "role": msg.get("role")}
        if self.lost_at is not None:
            back = now - self.lost_at
            self.timings["back_after_loss_s"].append(back)
            extra["after_loss_s"] = round(back, 2)
            self.lost_at = None
        elif mid in self.opened_at:
            first = now - self.opened_at.pop(mid)
            self.timings["join_after_open_s"].append(first)
            extra["after_open_s"] = round(first, 2)
        self.log.info(f"Đã vào cuộc họp {msg.get('title', mid)}", "joined", **extra)
        await self._close_peer()
        if msg.get("media"):
            await self._open_peer(mid)

    async def _on_left(self, msg: dict[str, Any]) -> None:
        if self._left is not None and not self._left.done():
            self._left.set_result(None)
        reason = str(msg.get("reason", ""))
        if reason == "joined another meeting" or msg.get("meeting_id") != self.want:
            return  # our own rejoin ('joined' follows), or a meeting we already left (closed)
        self.log.info(
            f"Đã rời cuộc họp {self._title(str(msg.get('meeting_id')))}",
            "left",
            meeting=msg.get("meeting_id"),
            reason=reason,
        )
        if reason.startswith("removed") and self.meeting:
            self.refused.add(self.meeting["occurrence_id"])
        self.want, self.meeting = None, None
        await self._close_peer()
        if not reason.startswith("removed"):
            await self._join_next()

    async def _on_removed(self, msg: dict[str, Any]) -> None:
        self.log.warning(
            f"Chủ trì ({msg.get('by')}) đã mời điểm cầu ra khỏi cuộc họp", "removed by the chair", meeting=self.want
        )

    async def _on_error(self, msg: dict[str, Any]) -> None:
        ref = msg.get("ref")
        text = msg.get("message", "")
        if ref is not None and ref == self._join_ref:
            mid, self._join_ref = self.want, None
            self.log.error(f"Không vào được cuộc họp {self._title(mid or '')}: {text}", "join refused", meeting=mid)
            if msg.get("code") == "forbidden" and mid:  # not invited, locked, removed: not this occurrence again
                self.refused.add(self.open_meetings.get(mid, {}).get("occurrence_id") or mid)
            elif msg.get("code") == "not_found" and mid:  # closed meanwhile
                self.open_meetings.pop(mid, None)
            self.want = None
            await self._join_next()
        elif ref is not None and ref == self._offer_ref and self.peer is not None:
            self.peer.on_error(text, msg.get("code"))
        else:
            self.log.warning(f"Máy chủ báo lỗi: {text}", "server error", code=msg.get("code"), meeting=self.want)

    # --- chair and floor -------------------------------------------------------------------------
    async def _on_mute_request(self, msg: dict[str, Any]) -> None:
        kind, muted = msg.get("kind", "audio"), bool(msg.get("muted", True))
        self.muted[kind] = muted
        if self.peer is not None:
            self.peer.set_muted(kind, muted)
        what = "micrô" if kind == "audio" else "camera"
        if muted:
            self.log.info(
                f"Chủ trì ({msg.get('by')}) đã tắt {what} của điểm cầu", f"{kind} muted by the chair", meeting=self.want
            )
        else:
            self.log.info(
                f"Chủ trì ({msg.get('by')}) đã bật lại {what}", f"{kind} unmuted by the chair", meeting=self.want
            )

    async def _on_floor(self, msg: dict[str, Any]) -> None:
        me, before = self.cfg.endpoint, self.floor
        self.floor = msg.get("endpoint_id")
        if "hands" in msg:
            self.hands = list(msg["hands"])
        if self.floor == me and before != me:
            self.muted["audio"] = False
            if self.peer is not None:
                self.peer.set_muted("audio", False)
            self.log.info("Điểm cầu được phát biểu", "floor granted", meeting=self.want)
        elif before == me and self.floor != me:
            self.log.info("Đã hết lượt phát biểu", "floor revoked", meeting=self.want)

    async def _on_hand(self, msg: dict[str, Any]) -> None:
        self.hands = list(msg.get("hands") or [])

    async def _on_participants(self, msg: dict[str, Any]) -> None:
        self.participants = len(msg.get("participants") or [])

    async def _on_locked(self, msg: dict[str, Any]) -> None:
        state = "khoá" if msg.get("locked") else "mở khoá"
        self.log.info(f"Chủ trì đã {state} cuộc họp", "locked" if msg.get("locked") else "unlocked", meeting=self.want)

    async def set_hand(self, raised: bool) -> None:
        """From the control API: ask for (or withdraw) the floor."""
        if self.meeting is None:
            raise NotConnected("not in a meeting")
        await self.conn.send("raise_hand" if raised else "lower_hand")
        if raised:
            self.log.info("Đã giơ tay xin phát biểu", "hand raised", meeting=self.want)
        else:
            self.log.info("Đã hạ tay", "hand lowered", meeting=self.want)

    # --- for the room's screen -------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        me = self.cfg.endpoint
        return {
            "endpoint": me,
            "name": self.identity.get("name"),
            "server": self.cfg.server,
            "connected": self.conn.connected,
            "meeting": self.meeting,
            "joining": self.want if self.meeting is None else None,
            "open_meetings": sorted(self.open_meetings),
            "participants": self.participants,
            "floor": self.floor,
            "has_floor": self.floor == me,
            "hand_raised": me in self.hands,
            "muted": dict(self.muted),
            "media": self.peer.stats() if self.peer is not None else None,
            "screen": self.cfg.screen,
            "sharing": self.peer is not None and self.peer.screen is not None,
            "connects": self.conn.connects,
            "timings": {k: [round(x, 3) for x in v[-5:]] for k, v in self.timings.items()},
            "last_errors": list(self.log.errors),
            "events": list(self.log.events)[-10:],
        }

"""Dial-out (#14): the server calls every invited room system with a SIP URI when a meeting opens.

As the room terminal's agent joins by itself, each invited endpoint with ``sip.uri`` gets a dialer
for the open occurrence: it calls, and calls again with backoff (5, 10, 20, 40, 60 s cap) after a
failure or a BYE from the room; never after the chair removed it, an operator hung it up, or the
meeting closed. A call that lasted a minute starts the backoff over.

Exactly one node dials an endpoint: the dialer holds the store lock ``sipdial:<occurrence>:<endpoint>``
(TTL ``LOCK_TTL_S``, refreshed while it runs). Every node looks at the open occurrences on
``meeting_opened`` and every ``SCAN_S`` s, so when a node dies its lock expires and another node's
scan takes the endpoint over and calls the room again (the issue's "back within 10 s" is met by
the node, from the state in the store: the open occurrence, the invitation and the ``sip-dial``
document; the room does not need to redial). While a call is up its dialog is in that document
(``outgoing.dialog_parts``: Call-ID, tags, target, route set, CSeq, transport, the room's address):
a node that takes the room over first BYEs that dead node's call, as a room with one line keeps
it and answers 486 Busy Here, then calls.

Operators and chairs: ``call_now`` (POST /api/v1/meetings/{id}/sip/{endpoint}) clears a hang-up
and wakes the dialer; ``hang_up`` (DELETE) writes ``stopped`` to the ``sip-dial`` document and
ends the call wherever it runs (event ``sip_hangup`` on the meeting events channel).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, cast

from endpoints.model import Endpoint
from signaling.context import Context
from signaling.meetings.model import Meeting
from signaling.meetings.scheduler import OPEN_INDEX
from signaling.sip.refusals import Refusal
from signaling.sip.member import SipMember
from signaling.ws.registry import MEETING_EVENTS

log = logging.getLogger("giaoban.sip.dialout")
BACKOFF_S = (5.0, 10.0, 20.0, 40.0, 60.0)
STEADY_S = 60.0  # a call that lasted this long was a good one: the next failure waits 5 s again
LOCK_TTL_S = 6.0  # a dead node's calls are taken over within this + SCAN_S (the issue: 10 s)
SCAN_S = 2.0
ORPHAN_BYE_S = 2.0  # how long a takeover waits for the room's answer to the dead node's BYE
STOP_S = 3.0  # stop() waits this long for the dialers' CANCELs and BYEs, then cuts them off
DIAL_STATE = "sip-dial"  # "<occurrence>:<endpoint>" -> {"state": "stopped" | "wanted", "by", "at", "dialog"}


@dataclass(eq=False)
class Dialer:
    occurrence_id: str
    meeting_id: str
    endpoint: Endpoint
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    member: SipMember | None = None
    task: asyncio.Task[None] | None = None
    state: str = "waiting"  # waiting | calling | in_call | backoff | done
    last_error: str = ""

    @property
    def key(self) -> str:
        return f"{self.occurrence_id}:{self.endpoint.id}"


class Caller(Protocol):
    """What dialling needs of the gateway (signaling.sip.gateway.SipGateway)."""

    ctx: Context
    members: dict[str, SipMember]  # its live calls, dialled in or out

    async def dial(
        self,
        endpoint: Endpoint,
        meeting: Meeting,
        on_member: Callable[[SipMember], None],
        on_up: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    ) -> SipMember: ...

    async def bye_dialog(self, parts: dict[str, Any]) -> int: ...


class DialOut:
    def __init__(self, gateway: Caller) -> None:
        self.gateway = gateway
        self.ctx = gateway.ctx
        self.node = gateway.ctx.settings.node_id
        self.dialers: dict[str, Dialer] = {}
        self._task: asyncio.Task[None] | None = None
        self._sub: Any = None

    async def start(self) -> None:
        self._sub = await self.ctx.store.subscribe(MEETING_EVENTS)
        self._task = asyncio.create_task(self._watch(), name="sip-dialout")

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.stop()
        if self._task is not None:
            self._task.cancel()
        for dialer in list(self.dialers.values()):
            self._finish(dialer, "server shutting down")
        tasks = [d.task for d in self.dialers.values() if d.task]
        if tasks:  # a CANCEL to a room that never answers waits 32 s (Timer B): not at shutdown
            _, late = await asyncio.wait(tasks, timeout=STOP_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    # what to dial ---------------------------------------------------------------------------------
    async def _watch(self) -> None:
        events = asyncio.create_task(self._events())
        try:
            while True:
                try:
                    await self.scan()
                except Exception:  # a store hiccup: the next scan tries again
                    log.exception("dial-out scan failed")
                await asyncio.sleep(SCAN_S)
        finally:
            events.cancel()

    async def _events(self) -> None:
        async for event in self._sub:
            try:
                kind = event.get("type")
                if kind == "meeting_opened":
                    await self.scan()
                elif kind == "meeting_closed":
                    for dialer in self._of(event.get("occurrence_id")):
                        self._finish(dialer, "meeting closed")
                elif kind == "sip_hangup":
                    reason = f"hung up by {event.get('by')}"
                    for dialer in self._of(event.get("occurrence_id"), event.get("endpoint_id")):
                        self._finish(dialer, reason)
                    for member in list(self.gateway.members.values()):  # it dialled in: BYE too
                        if (member.occurrence_id, member.endpoint_id) == (
                            event.get("occurrence_id"),
                            event.get("endpoint_id"),
                        ):
                            member.removed = True
                            member.end(reason)
                elif kind == "sip_call":
                    await self.scan()
                    for dialer in self._of(event.get("occurrence_id"), event.get("endpoint_id")):
                        dialer.wake.set()
            except Exception:
                log.exception("dial-out event failed", extra={"event": event.get("type")})

    def _of(self, occurrence_id: Any, endpoint_id: Any = None) -> list[Dialer]:
        return [
            d
            for d in self.dialers.values()
            if d.occurrence_id == occurrence_id and (endpoint_id is None or d.endpoint.id == endpoint_id)
        ]

    async def scan(self) -> None:
        """A dialer for each (open occurrence, invited endpoint with a SIP URI) not stopped."""
        for occurrence_id, doc in await self.ctx.store.list(OPEN_INDEX):
            try:
                meeting = await self.ctx.meetings.get(doc["meeting_id"])
            except Exception:
                continue
            # cast: MeetingService's own method ``list`` shadows the builtin in its annotation
            for endpoint in cast("list[Endpoint]", self.ctx.meetings.invited_endpoints(meeting)):
                if endpoint.sip is None or f"{occurrence_id}:{endpoint.id}" in self.dialers:
                    continue
                state = await self.ctx.store.get(DIAL_STATE, f"{occurrence_id}:{endpoint.id}")
                if state is not None and state.get("state") == "stopped":
                    continue
                if not await self.ctx.store.acquire_lock(_lock(occurrence_id, endpoint.id), self.node, LOCK_TTL_S):
                    continue  # another node dials it
                dialer = Dialer(occurrence_id, meeting.id, endpoint)
                self.dialers[dialer.key] = dialer
                dialer.task = asyncio.create_task(self._run(dialer), name=f"sip-dial:{dialer.key}")

    # one endpoint ---------------------------------------------------------------------------------
    async def _run(self, dialer: Dialer) -> None:
        keeper = asyncio.create_task(self._keep_lock(dialer))
        attempt = 0
        try:
            await self._end_orphan(dialer)
            while dialer.state != "done":
                if not await self._still_wanted(dialer):
                    break
                started = time.monotonic()
                outcome = await self._call_once(dialer)
                if outcome == "stop" or dialer.state == "done":
                    break
                attempt = 0 if time.monotonic() - started >= STEADY_S else attempt
                delay = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
                attempt += 1
                dialer.state = "backoff"
                log.info("redialling %s in %.0f s (%s)", dialer.endpoint.id, delay, outcome)
                dialer.wake.clear()
                try:
                    await asyncio.wait_for(dialer.wake.wait(), delay)
                except asyncio.TimeoutError:
                    pass
        except Exception:
            log.exception("dialer failed", extra={"endpoint": dialer.endpoint.id})
        finally:
            keeper.cancel()
            dialer.state = "done"
            self.dialers.pop(dialer.key, None)
            await self.ctx.store.release_lock(_lock(dialer.occurrence_id, dialer.endpoint.id), self.node)

    async def _call_once(self, dialer: Dialer) -> str:
        """One call: 'stop' (removed, closed, hung up) or why to call again."""
        dialer.state = "calling"
        try:
            people = await self.ctx.rooms.participants(dialer.occurrence_id)
            if any(p.get("endpoint_id") == dialer.endpoint.id and p.get("kind") == "sip" for p in people):
                return "it dialled in itself"  # look again after the backoff
            meeting: Meeting = await self.ctx.meetings.get(dialer.meeting_id)

            def attach(member: SipMember) -> None:
                dialer.member = member
                dialer.state = "in_call"

            member = await self.gateway.dial(dialer.endpoint, meeting, attach, lambda d: self._dialog(dialer, d))
        except Refusal as no:
            dialer.last_error = str(no)
            return "stop" if no.code in (403, 404, 480) else str(no)  # removed, not invited, closed
        except Exception as exc:
            dialer.last_error = f"{type(exc).__name__}: {exc}"
            return dialer.last_error
        finally:
            dialer.member = None
            await self._dialog(dialer, None)
        if member.removed or dialer.state == "done" or member.ended.startswith("meeting closed"):
            return "stop"
        return member.ended or "ended"

    async def _dialog(self, dialer: Dialer, parts: dict[str, Any] | None) -> None:
        """Keep the call's dialog in the ``sip-dial`` document while it is up (None: it ended)."""
        state = await self.ctx.store.get(DIAL_STATE, dialer.key) or {}
        if parts is None and "dialog" not in state:
            return
        state = {k: v for k, v in state.items() if k != "dialog"}
        await self.ctx.store.put(DIAL_STATE, dialer.key, {**state, "dialog": parts} if parts else state)

    async def _end_orphan(self, dialer: Dialer) -> None:
        """A dead node's call to this room, still up at the room: BYE it before calling again."""
        state = await self.ctx.store.get(DIAL_STATE, dialer.key)
        if not state or not state.get("dialog"):
            return
        try:
            status = await asyncio.wait_for(self.gateway.bye_dialog(state["dialog"]), ORPHAN_BYE_S)
        except (TimeoutError, KeyError, ValueError, TypeError) as exc:
            status = 0
            log.info("BYE of %s's orphaned call not answered (%s)", dialer.endpoint.id, type(exc).__name__)
        log.info("BYE of the orphaned call to %s: %s", dialer.endpoint.id, status)
        await self._dialog(dialer, None)

    async def _still_wanted(self, dialer: Dialer) -> bool:
        state = await self.ctx.store.get(DIAL_STATE, dialer.key)
        return state is None or state.get("state") != "stopped"

    async def _keep_lock(self, dialer: Dialer) -> None:
        lock = _lock(dialer.occurrence_id, dialer.endpoint.id)
        while True:
            await asyncio.sleep(LOCK_TTL_S / 3)
            if not await self.ctx.store.acquire_lock(lock, self.node, LOCK_TTL_S):
                self._finish(dialer, "another node took this call over")
                return

    def _finish(self, dialer: Dialer, reason: str) -> None:
        dialer.state = "done"
        dialer.wake.set()
        if dialer.member is not None:
            dialer.member.end(reason)

    # operators and chairs -------------------------------------------------------------------------
    async def call_now(self, occurrence_id: str, endpoint_id: str, by: str) -> None:
        key = f"{occurrence_id}:{endpoint_id}"
        await self.ctx.store.put(DIAL_STATE, key, {"state": "wanted", "by": by, "at": time.time()})
        await self.ctx.store.publish(
            MEETING_EVENTS, {"type": "sip_call", "occurrence_id": occurrence_id, "endpoint_id": endpoint_id}
        )

    async def hang_up(self, occurrence_id: str, endpoint_id: str, by: str) -> None:
        key = f"{occurrence_id}:{endpoint_id}"
        await self.ctx.store.put(DIAL_STATE, key, {"state": "stopped", "by": by, "at": time.time()})
        await self.ctx.store.publish(
            MEETING_EVENTS, {"type": "sip_hangup", "occurrence_id": occurrence_id, "endpoint_id": endpoint_id, "by": by}
        )

    def status(self, occurrence_id: str, endpoint_id: str) -> dict[str, Any] | None:
        dialer = self.dialers.get(f"{occurrence_id}:{endpoint_id}")
        if dialer is None:
            return None
        return {"state": dialer.state, "node": self.node, "last_error": dialer.last_error}


def _lock(occurrence_id: str, endpoint_id: str) -> str:
    return f"sipdial:{occurrence_id}:{endpoint_id}"

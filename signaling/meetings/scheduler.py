"""Opens and closes meeting occurrences on time and tells every node through pub/sub.

One ``tick(now)`` is one pass; ``start()`` runs it every ``interval_s`` on the real clock.

Several scheduler nodes may run against one store. An occurrence is opened by exactly one of
them: the node takes lock ``sched:<occurrence_id>`` and then creates the state document in
``occurrences`` with ``put_if_absent``; only the node whose put succeeds publishes. The lock
keeps two nodes from racing through the steps; put_if_absent is what makes it correct even when
a lock expires. Closing is a ``compare_and_put`` open -> closed on the same document.

Decisions:
* an occurrence opens ``service.early_join`` before its start (terminals connect and settle
  before 08:00), so ``meeting_opened`` comes at 07:50 for an 08:00 briefing by default;
* after downtime, an occurrence that has started but not ended opens at once; one that ended
  while no scheduler ran (looking back ``lookback``) gets a 'closed' document with missed=True
  and no messages - nobody can join it any more;
* an open occurrence is closed early when its meeting or the occurrence is cancelled, or when a
  change of schedule removed it (reason 'cancelled' / 'rescheduled');
* a client that enters an occurrence opens it if no pass has yet (``ensure_open``): otherwise a
  cancel right after an early join found nothing open to close, and its sessions stayed;
* ``open-occurrences`` indexes the currently open ids so the close pass stays small; the index
  entry is written before the state document, so a crash in between leaves a harmless orphan
  entry (dropped later), never an open occurrence that nobody closes.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

from signaling.meetings.errors import NotFoundError
from signaling.meetings.model import Meeting, Occurrence, iso
from signaling.meetings.service import OCCURRENCES, Clock, MeetingService, expand, find_occurrence, utc_now
from signaling.store.base import Doc, Store

log = logging.getLogger("giaoban.scheduler")
OPEN_INDEX = "open-occurrences"
ORPHAN_AFTER = timedelta(minutes=1)


class Scheduler:
    def __init__(
        self,
        store: Store,
        service: MeetingService,
        node_id: str,
        clock: Clock = utc_now,
        publish_channel: str = "meeting-events",
        *,
        interval_s: float = 1.0,
        lookback: timedelta = timedelta(hours=24),
        lock_ttl_s: float = 30.0,
    ) -> None:
        self.store = store
        self.service = service
        self.node_id = node_id
        self.clock = clock
        self.channel = publish_channel
        self.interval_s = interval_s
        self.lookback = lookback
        self.lock_ttl_s = lock_ttl_s
        self._settled: set[str] = set()  # occurrence ids known to have a state document
        self._task: asyncio.Task[None] | None = None

    # loop --------------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"scheduler:{self.node_id}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                await self.tick(self.clock())
            except Exception:  # one bad pass (store hiccup, corrupt document) must not stop scheduling
                log.exception("scheduler pass failed", extra={"node": self.node_id})
            await asyncio.sleep(self.interval_s)

    async def tick(self, now: datetime | None = None) -> list[Doc]:
        """One pass: close what has ended, then open what is due. Returns the messages it published."""
        now = self.clock() if now is None else now
        sent = await self._close_pass(now)
        return sent + await self._open_pass(now)

    # opening ----------------------------------------------------------------------------------
    async def _open_pass(self, now: datetime) -> list[Doc]:
        due = await self._due(now)
        self._settled &= {occ.occurrence_id for _, occ in due}  # forget what left the window
        sent: list[Doc] = []
        for meeting, occ in due:
            if occ.occurrence_id in self._settled:
                continue
            if occ.ends_at <= now:
                await self._mark_missed(meeting, occ, now)
            elif (msg := await self._open(meeting, occ, now)) is not None:
                sent.append(msg)
        return sent

    async def _due(self, now: datetime) -> list[tuple[Meeting, Occurrence]]:
        """Occurrences whose opening time has come, ended ones within ``lookback`` included, by start."""
        early = self.service.early_join
        due = []
        for meeting in await self.service.list():
            if meeting.status != "scheduled":
                continue
            for occ in expand(meeting, now - self.lookback, now + early + timedelta(seconds=1)):
                if occ.state != "cancelled" and occ.starts_at - early <= now:
                    due.append((meeting, occ))
        due.sort(key=lambda pair: (pair[1].starts_at, pair[0].id))
        return due

    async def _open(self, meeting: Meeting, occ: Occurrence, now: datetime) -> Doc | None:
        occ_id = occ.occurrence_id
        lock = f"sched:{occ_id}"
        if not await self.store.acquire_lock(lock, self.node_id, self.lock_ttl_s):
            return None  # another node is on it; the next pass sees its result
        try:
            if await self.store.get(OCCURRENCES, occ_id) is not None:
                self._settled.add(occ_id)
                return None
            await self.store.put(OPEN_INDEX, occ_id, {"meeting_id": meeting.id, "at": iso(now)})
            doc = self._state_doc(meeting, occ, now, "open")
            if not await self.store.put_if_absent(OCCURRENCES, occ_id, doc):
                self._settled.add(occ_id)
                return None
            self._settled.add(occ_id)
            msg = _message("meeting_opened", meeting.title, doc)
            await self.store.publish(self.channel, msg)
            log.info(
                "occurrence opened",
                extra={
                    "meeting_id": meeting.id,
                    "occurrence_id": occ_id,
                    "node": self.node_id,
                    "invited": len(doc["invited"]),
                },
            )
            return msg
        finally:
            await self.store.release_lock(lock, self.node_id)

    async def ensure_open(self, meeting: Meeting, occ: Occurrence) -> bool:
        """A client is entering ``occ``, which may be joined from ``early_join`` before its start,
        before this scheduler's pass has opened it: open it now (the same locked put_if_absent).
        An occurrence only the close pass knows about is one a cancel, reschedule or deletion
        can close: one never opened would keep its sessions for ever. False once it is closed."""
        doc = await self.store.get(OCCURRENCES, occ.occurrence_id)
        if doc is None:
            await self._open(meeting, occ, self.clock())
            doc = await self.store.get(OCCURRENCES, occ.occurrence_id)
        return doc is None or doc.get("state") == "open"  # None: another node holds the lock, opening it

    async def _mark_missed(self, meeting: Meeting, occ: Occurrence, now: datetime) -> None:
        doc = self._state_doc(meeting, occ, now, "closed") | {"missed": True, "closed_at": iso(now)}
        if await self.store.put_if_absent(OCCURRENCES, occ.occurrence_id, doc):
            log.warning(
                "occurrence ended while no scheduler ran; marked closed",
                extra={"meeting_id": meeting.id, "occurrence_id": occ.occurrence_id},
            )
        self._settled.add(occ.occurrence_id)

    def _state_doc(self, meeting: Meeting, occ: Occurrence, now: datetime, state: str) -> Doc:
        # the invitation snapshot: attendance counts against who was invited when it opened
        return {
            "meeting_id": meeting.id,
            "occurrence_id": occ.occurrence_id,
            "title": meeting.title,
            "state": state,
            "starts_at": iso(occ.starts_at),
            "ends_at": iso(occ.ends_at),
            "invited": self.service.invited_ids(meeting),
            "opened_at": iso(now),
            "opened_by": self.node_id,
        }

    # closing ----------------------------------------------------------------------------------
    async def _close_pass(self, now: datetime) -> list[Doc]:
        sent: list[Doc] = []
        for occ_id, entry in await self.store.list(OPEN_INDEX):
            doc = await self.store.get(OCCURRENCES, occ_id)
            if doc is None or doc.get("state") != "open":
                if doc is not None or now - datetime.fromisoformat(entry["at"]) > ORPHAN_AFTER:
                    await self.store.delete(OPEN_INDEX, occ_id)
                continue
            reason, end = await self._close_reason(doc, now)
            if now >= end and (msg := await self._close(occ_id, doc, reason, end, now)) is not None:
                sent.append(msg)
        return sent

    async def _close_reason(self, doc: Doc, now: datetime) -> tuple[str, datetime]:
        """Why and when the open occurrence ends, judged against the meeting as it is now."""
        try:
            meeting = await self.service.get(doc["meeting_id"])
        except NotFoundError:
            return "deleted", now
        if meeting.status == "cancelled":
            return "cancelled", now
        try:
            occ = find_occurrence(meeting, doc["occurrence_id"])
        except NotFoundError:
            return "rescheduled", now
        if occ.state == "cancelled":
            return "cancelled", now
        return "ended", occ.ends_at

    async def _close(self, occ_id: str, doc: Doc, reason: str, end: datetime, now: datetime) -> Doc | None:
        lock = f"sched:{occ_id}"
        if not await self.store.acquire_lock(lock, self.node_id, self.lock_ttl_s):
            return None
        try:
            closed = doc | {"state": "closed", "reason": reason, "closed_at": iso(now), "closed_by": self.node_id}
            if reason == "ended":
                closed["ends_at"] = iso(end)  # the meeting may have been lengthened while open
            won = await self.store.compare_and_put(OCCURRENCES, occ_id, doc, closed)
            await self.store.delete(OPEN_INDEX, occ_id)
            if not won:
                return None
            msg = _message("meeting_closed", doc["title"], closed) | {"reason": reason}
            await self.store.publish(self.channel, msg)
            log.info(
                "occurrence closed",
                extra={
                    "meeting_id": doc["meeting_id"],
                    "occurrence_id": occ_id,
                    "node": self.node_id,
                    "reason": reason,
                },
            )
            return msg
        finally:
            await self.store.release_lock(lock, self.node_id)


def _message(kind: str, title: str, doc: Doc) -> dict[str, Any]:
    return {
        "type": kind,
        "meeting_id": doc["meeting_id"],
        "occurrence_id": doc["occurrence_id"],
        "title": title,
        "starts_at": doc["starts_at"],
        "ends_at": doc["ends_at"],
        "invited": list(doc["invited"]),
    }

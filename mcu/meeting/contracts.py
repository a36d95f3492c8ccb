"""What a meeting needs of its members and of its extensions (protocols only; no implementation).

A ``Member`` is a subscriber/publisher of the meeting: today ``mcu.peer.peer.LocalPeer``; a SIP
leg may be one more kind. A ``MeetingExtension`` takes part in a meeting beside its members: the
MCU pipeline (``mcu.bridge.pipeline``), a cascade trunk to the meeting's origin node
(``mcu.cascade.trunk``), later a SIP gateway. Whoever creates an extension attaches it
(``Meeting.attach``); this module imports none of them, so a new kind never touches ``Meeting``.
The other way round, an extension uses its meeting only through ``MeetingHandle``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

from mcu.api import EventSink, PeerSpec
from mcu.sfu.router import Router
from mcu.sfu.stream import Stream
from mcu.sfu.subscriber import Output


class Sources:
    """The meeting's sources, ordered once per assignment (not once per subscriber)."""

    __slots__ = ("cameras", "screens", "mics")

    def __init__(self, cameras: list[Stream], screens: list[Stream], mics: list[Stream]) -> None:
        self.cameras = cameras  # by order of appearance
        self.screens = screens
        self.mics = mics  # ranked: floor, speaker, recently loud, newest


class Member(Protocol):
    """What the meeting reads and asks of one endpoint's connection."""

    endpoint_id: str
    spec: PeerSpec
    media_mode: str  # "sfu" | "mcu" | "both" (mcu.bridge.rendition_policy)
    closed: bool
    congested: bool  # set by the meeting from the loss its outputs report
    pending_roles: list[str]  # offered, not yet answered
    refused_roles: list[str]
    events: EventSink

    @property
    def streams(self) -> Mapping[str, Stream]: ...  # what it publishes, by mid

    @property
    def connected(self) -> bool: ...  # its transport is up (ICE + DTLS) and it is not closed

    @property
    def outputs(self) -> Mapping[str, Output]: ...  # what it receives, by mid

    def request_slots(self, roles: list[str]) -> None: ...  # offer more send m-lines

    def post(self, op: Callable[[], Awaitable[Any]], droppable: bool = False) -> None: ...

    def schedule_close(self) -> None: ...  # replaced by a newer connection of its endpoint

    async def set_muted(self, kind: str, muted: bool) -> None: ...  # chair mute

    async def close(self) -> None: ...  # idempotent

    def stats(self) -> dict[str, Any]: ...


class MeetingExtension(Protocol):
    """Something attached to a meeting. Called by the meeting, always on its event loop."""

    name: str  # its key in Meeting.stats()

    @property
    def remote_origin(self) -> str | None:
        """When it serves the meeting from another node, the meeting's origin (a cascade trunk):
        the endpoint id its streams carry for the endpoints there (``Meeting.remote_origin``
        says what follows). None otherwise."""

    def published(self) -> Iterable[Stream]: ...  # the sources it adds to the meeting

    def on_assign(self, sources: Sources) -> None: ...  # members routed: route its own outputs

    def forget(self, endpoint_id: str) -> None: ...  # a member left

    def tick(self, now: float) -> None: ...  # the meeting's periodic tick (about 4 Hz)

    async def stop(self) -> None: ...  # idempotent; awaits what it started

    def stats(self) -> dict[str, Any]: ...


class Composer(MeetingExtension, Protocol):
    """The extension that composes and mixes for MCU-mode members (``mcu.bridge.pipeline``). The
    meeting starts one (through the factory it was given) while a member or a holder needs it."""

    async def start(self) -> None: ...

    def set_layout(self, layout: str | None) -> None: ...


class MeetingHandle(Protocol):
    """What an extension may use of the meeting it is attached to (``mcu.meeting.meeting.Meeting``).

    Read: who is there and who has the floor and the word; act: route through the meeting's
    router, tell the meeting its sources changed, leave it. The MCU pipeline reads a subset of
    it (``mcu.bridge.pipeline.McuHost``, declared there since bridge sits below this layer)."""

    meeting_id: str
    audio_slots: int  # audio outputs per subscriber
    router: Router  # the meeting's SFU switch

    @property
    def peers(self) -> Mapping[str, Member]: ...  # the members on this node, by endpoint id

    @property
    def floor(self) -> str | None: ...  # whose streams routing treats as the floor's

    @property
    def speaker(self) -> str | None: ...

    @property
    def composite_layout(self) -> str | None: ...  # the chair's choice; None: by source count

    def mcu_wanted(self) -> bool: ...  # a member or a holder needs composing and mixing

    def streams_changed(self, streams: Iterable[Stream]) -> None: ...  # new, relabelled or gone: reroute

    def assign_audio(self, outs: list[Output], wanted: list[Stream]) -> None: ...  # slots keep their stream

    def notify_all(self, message: dict[str, Any]) -> None: ...  # an event to every member

    def detach(self, extension: MeetingExtension, *, stop: bool = True) -> None: ...

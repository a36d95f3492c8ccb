"""Everything a request handler or a WebSocket session needs, built once per server node.

Layers of ``signaling``; a module imports only from its own layer or those below it:
  1. store, auth, meetings, rooms, recording, guard, protocol, errors, settings, and the
     ``cluster.placement`` interface: state, rules and use cases that need no context;
  2. context: one node wired together (``signaling.app.build_context`` fills it);
  3. api.http (REST plumbing), then the api routes and cluster; beside them ws (WebSocket sessions);
  4. app: the aiohttp application.
The context holds this node's connected clients through ``ClientRegistry`` and says what a client
is (``Client``, ``MediaClient``), so it never imports ``signaling.ws`` or ``signaling.api``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from endpoints.directory import Directory
from signaling.auth.authenticator import Authenticator, Identity
from signaling.cluster.placement import Placement
from mcu.api import HostedMediaNode, Recordings
from signaling.meetings.scheduler import Scheduler
from signaling.meetings.service import MeetingService
from signaling.rooms import RoomHub
from signaling.settings import Settings
from signaling.store.base import Store


class Client(Protocol):
    """A WebSocket client of this node, as the registry drives it (signaling.ws.session.Session)."""

    @property
    def session_id(self) -> str: ...
    @property
    def identity(self) -> Identity | None: ...  # None until its hello
    @property
    def meeting_id(self) -> str | None: ...
    @property
    def occurrence_id(self) -> str | None: ...
    @property
    def connected_at(self) -> float: ...
    async def deliver(self, msg: dict[str, Any]) -> None: ...  # queue a message for the client
    def enqueue(self, action: Callable[[], Awaitable[None]]) -> None: ...  # run on the client's own task
    async def leave_meeting(self, reason: str) -> None: ...
    async def close(self, code: int, reason: str) -> None: ...


class MediaClient(Protocol):
    """A WHIP/WHEP client (signaling.api.whip.HttpMediaMember): no socket, it just ends."""

    @property
    def session_id(self) -> str: ...
    @property
    def identity(self) -> Identity: ...
    @property
    def occurrence_id(self) -> str: ...
    def end(self, reason: str, drop_floor: bool = False) -> None: ...  # drop_floor: take the floor from it too


class ClientRegistry(Protocol):
    """This node's connected clients: WebSocket sessions and WHIP/WHEP members (implemented by
    signaling.ws.registry.SessionRegistry)."""

    def __len__(self) -> int: ...
    def all(self) -> list[Client]: ...
    async def add(self, session: Client) -> list[Client]: ...
    async def remove(self, session: Client) -> None: ...
    async def refresh_presence(self, session: Client) -> None: ...
    def add_media(self, member: MediaClient) -> None: ...
    def remove_media(self, member: MediaClient) -> None: ...
    async def publish_revocation(self, event: dict[str, Any]) -> None: ...
    async def end_revoked(self) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class SipCalls(Protocol):
    """The SIP gateway as REST drives it (signaling.sip.gateway.SipGateway; #14)."""

    async def call_now(self, occurrence_id: str, endpoint_id: str, by: str) -> None: ...
    async def hang_up(self, occurrence_id: str, endpoint_id: str, by: str) -> None: ...
    def call_state(self, occurrence_id: str, endpoint_id: str) -> dict[str, Any] | None: ...


@dataclass
class Context:
    settings: Settings
    store: Store
    directory: Directory
    auth: Authenticator
    meetings: MeetingService
    scheduler: Scheduler
    rooms: RoomHub
    sessions: ClientRegistry
    media: HostedMediaNode | None = None  # this process's media node, if it runs one
    recordings: Recordings | None = None  # when this node has a media node
    placement: Placement | None = None  # the media node of each peer and meeting (None: no media at all)
    sip: SipCalls | None = None  # the SIP gateway for room systems, when sip.enabled (#14)
    started: float = field(default_factory=time.time)

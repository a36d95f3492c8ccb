"""Everything a request handler or a WebSocket session needs, built once per server node.

Layers of ``signaling``; a module imports only from its own layer or those below it:
  1. store, auth, meetings, rooms, recording, guard, protocol, errors, settings, and the
     ``cluster.placement`` interface: state, rules and use cases that need no context;
  2. context: one node wired together (``signaling.app.build_context`` fills it);
  3. api.http (REST plumbing), then the api routes and cluster; beside them ws (WebSocket sessions);
  4. app: the aiohttp application.
The context holds this node's connected clients through ``ClientRegistry``, so it never imports
``signaling.ws``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from endpoints.directory import Directory
from signaling.auth.authenticator import Authenticator
from signaling.cluster.placement import Placement
from mcu.api import MediaNode
from signaling.meetings.scheduler import Scheduler
from signaling.meetings.service import MeetingService
from signaling.rooms import RoomHub
from signaling.settings import Settings
from signaling.store.base import Store


class ClientRegistry(Protocol):
    """This node's connected clients: WebSocket sessions and WHIP/WHEP members (implemented by
    signaling.ws.registry.SessionRegistry, which also says what a client is; typed Any here
    so that the context needs nothing of the layers above it)."""

    def __len__(self) -> int: ...
    def all(self) -> list[Any]: ...
    async def add(self, session: Any) -> list[Any]: ...
    async def remove(self, session: Any) -> None: ...
    async def refresh_presence(self, session: Any) -> None: ...
    def add_media(self, member: Any) -> None: ...
    def remove_media(self, member: Any) -> None: ...
    async def publish_revocation(self, event: dict[str, Any]) -> None: ...
    async def end_revoked(self) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


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
    media: MediaNode | None = None
    recordings: Any = None  # mcu.record.RecordingService when this node has a media node
    placement: Placement | None = None  # the media node of each peer and meeting (None: no media at all)
    started: float = field(default_factory=time.time)

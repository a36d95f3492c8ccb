"""Everything a request handler or a WebSocket session needs, built once per server node."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from endpoints.directory import Directory
from signaling.auth.authenticator import Authenticator
from signaling.cluster.placement import Placement
from mcu.api import MediaNode
from signaling.meetings.scheduler import Scheduler
from signaling.meetings.service import MeetingService
from signaling.rooms import RoomHub
from signaling.settings import Settings
from signaling.store.base import Store

if TYPE_CHECKING:
    from signaling.ws.registry import SessionRegistry


@dataclass
class Context:
    settings: Settings
    store: Store
    directory: Directory
    auth: Authenticator
    meetings: MeetingService
    scheduler: Scheduler
    rooms: RoomHub
    sessions: "SessionRegistry"
    media: MediaNode | None = None
    recordings: Any = None  # mcu.record.RecordingService when this node has a media node
    placement: Placement | None = None  # the media node of each peer and meeting (None: no media at all)
    started: float = field(default_factory=time.time)

"""Placeholder tracks for aiortc senders whose packets the router writes itself."""

from __future__ import annotations

import asyncio

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack


class IdleTrack(MediaStreamTrack):
    """A track that never yields a frame.

    The media node negotiates send m-lines with aiortc (so the SDP, SSRCs and RTCP sender
    reports are standard) but forwards packets itself; the sender's own RTP loop must stay idle
    without polling. ``recv()`` waits until the track is stopped.
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._stopped_event = asyncio.Event()

    async def recv(self):  # type: ignore[override]
        await self._stopped_event.wait()
        raise MediaStreamError

    def stop(self) -> None:
        super().stop()
        self._stopped_event.set()

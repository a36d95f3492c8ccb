"""LocalPeer with a fake meeting: its owner queue, its close, and what it asks the meeting.
Negotiation runs against a plain aiortc client on 127.0.0.1; no media flows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from mcu.api import PeerSpec
from mcu.bridge.rendition_policy import DEFAULT_POLICY
from mcu.peer.ice import pin_host_addresses
from mcu.peer.negotiation import NegotiationError
from mcu.peer.errors import Glare, PeerBusy, PeerClosed
from mcu.peer.owner_task import OPS_QUEUE_SIZE
from mcu.peer.peer import LocalPeer
from mcu.sfu.router import Router


class FakeHost:
    """The meeting as a peer sees it (mcu.peer.peer.PeerHost)."""

    def __init__(self) -> None:
        self.router = Router()
        self.media_policy = DEFAULT_POLICY
        self.changed = 0
        self.removed: list[LocalPeer] = []
        self.forgotten: list[LocalPeer] = []  # the node's on_closed (after the peer released all)
        self.missing: list[str] = []  # what missing_roles answers

    def peer_changed(self, peer: LocalPeer) -> None:
        self.changed += 1

    def missing_roles(self, peer: LocalPeer) -> list[str]:
        return [r for r in self.missing if r not in [o.role for o in peer.outputs.values()]]

    def remove_peer(self, peer: LocalPeer) -> None:
        self.removed.append(peer)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()

    async def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        self.arrived.set()


@pytest.fixture
async def peer() -> AsyncIterator[LocalPeer]:
    pin = pin_host_addresses(["127.0.0.1"])
    host = FakeHost()
    spec = PeerSpec(meeting_id="m", endpoint_id="a", display_name="A", role="participant", link="fibre", publish=True)
    p = LocalPeer(host, spec, Inbox(), on_closed=host.forgotten.append)
    try:
        yield p
    finally:
        await p.close()
        pin.release()


def blocker(peer: LocalPeer) -> asyncio.Event:
    """Occupy the owner task until the returned event is set."""
    gate = asyncio.Event()
    peer.post(gate.wait)
    return gate


async def test_operations_run_one_at_a_time_in_order(peer: LocalPeer) -> None:
    log: list[str] = []
    running = 0

    def op(name: str) -> Any:
        async def run() -> None:
            nonlocal running
            running += 1
            log.append(f"{name}:{running}")
            await asyncio.sleep(0)
            running -= 1

        return run

    for name in "abc":
        peer.post(op(name))
    await peer.set_muted("audio", True)  # not queued: it only flags streams
    done = asyncio.Event()
    peer.post(lambda: asyncio.sleep(0, done.set()))
    await asyncio.wait_for(done.wait(), 2)
    assert log == ["a:1", "b:1", "c:1"]


async def test_a_full_queue_refuses_with_peer_busy_and_drops_notifications_first(peer: LocalPeer) -> None:
    gate = blocker(peer)
    await asyncio.sleep(0)  # the owner task takes it and waits
    ran: list[int] = []
    for i in range(OPS_QUEUE_SIZE // 2):
        peer.post(lambda i=i: asyncio.sleep(0, ran.append(i)))
    peer.post(lambda: asyncio.sleep(0, ran.append(-1)), droppable=True)  # a speaker notification
    assert peer.dropped_notifications == 1
    for i in range(OPS_QUEUE_SIZE // 2):
        peer.post(lambda: asyncio.sleep(0))
    with pytest.raises(PeerBusy):
        await peer.handle_answer("v=0")
    gate.set()
    await peer.close()
    assert -1 not in ran


async def test_close_is_idempotent_fails_waiting_calls_and_tells_the_meeting_once(peer: LocalPeer) -> None:
    host: FakeHost = peer.meeting  # type: ignore[assignment]
    gate = blocker(peer)
    await asyncio.sleep(0)
    waiting = asyncio.ensure_future(peer.handle_answer("v=0"))
    await asyncio.sleep(0)
    await asyncio.gather(peer.close(), peer.close())
    await peer.close()
    with pytest.raises(PeerClosed):
        await waiting
    with pytest.raises(PeerClosed):
        await peer.handle_offer("v=0")
    assert host.removed == [peer] and host.forgotten == [peer]
    assert not gate.is_set()


async def test_an_answer_without_a_server_offer_is_refused(peer: LocalPeer) -> None:
    with pytest.raises(NegotiationError, match="no server offer"):
        await peer.handle_answer("v=0")
    assert peer.meeting.changed == 0  # type: ignore[attr-defined]


@pytest.mark.integration
async def test_first_offer_registers_media_and_missing_slots_become_a_server_offer(peer: LocalPeer) -> None:
    host: FakeHost = peer.meeting  # type: ignore[assignment]
    client = RTCPeerConnection()
    try:
        client.addTransceiver("audio", direction="recvonly")
        client.addTransceiver("video", direction="recvonly")
        await client.setLocalDescription(await client.createOffer())
        answer = await peer.handle_offer(client.localDescription.sdp)
        await client.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        # its own offer gave the first audio and video slots; the meeting was told
        assert sorted(o.role for o in peer.outputs.values()) == ["audio", "main"]
        assert host.changed >= 1 and peer.streams == {}  # recvonly: it publishes nothing

        host.missing = ["audio", "main", "slides"]  # the meeting wants a screen-share slot too
        inbox: Inbox = peer.events  # type: ignore[assignment]
        peer.request_slots(["slides"])
        await asyncio.wait_for(inbox.arrived.wait(), 5)
        offer = inbox.messages[-1]
        assert offer["type"] == "offer" and offer["sdp"].count("m=video") == 2
        assert peer.pending_roles == ["slides"]
        with pytest.raises(Glare):  # the client answers first
            await peer.handle_offer(client.localDescription.sdp)
        await client.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        await client.setLocalDescription(await client.createAnswer())
        told = host.changed
        await peer.handle_answer(client.localDescription.sdp)
        assert sorted(o.role for o in peer.outputs.values()) == ["audio", "main", "slides"]
        assert peer.pending_roles == [] and host.changed > told
    finally:
        await client.close()

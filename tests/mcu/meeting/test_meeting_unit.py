"""Meeting policy with small fakes (no network, no codecs): which stream each output carries,
which slots a member is asked to open, and what an attached extension sees."""

from __future__ import annotations

import itertools
from typing import Any

from mcu.api import PeerSpec
from mcu.meeting.contracts import Sources
from mcu.meeting.meeting import Meeting
from mcu.sfu.stream import Stream
from mcu.sfu.subscriber import Output

_ssrc = itertools.count(1000)
KIND = {"camera": "video", "screen": "video", "mic": "audio"}
ROLE_KIND = {"main": "video", "slides": "video", "composite": "video", "audio": "audio", "mix": "audio"}


class FakeMember:
    """What a meeting needs of a member (mcu.meeting.contracts.Member), with plain SFU objects."""

    def __init__(self, endpoint_id: str, media_mode: str = "sfu") -> None:
        self.endpoint_id = endpoint_id
        self.spec = PeerSpec(
            meeting_id="m",
            endpoint_id=endpoint_id,
            display_name=endpoint_id.upper(),
            role="participant",
            link="fibre",
            publish=True,
        )
        self.media_mode = media_mode
        self.closed = False
        self.congested = False
        self.pending_roles: list[str] = []
        self.refused_roles: list[str] = []
        self.streams: dict[str, Stream] = {}
        self.outputs: dict[str, Output] = {}
        self.asked: list[list[str]] = []  # roles the meeting asked it to offer
        self.replaced = False

    async def events(self, message: dict[str, Any]) -> None:
        pass

    def publish(self, *sources: str) -> FakeMember:
        for source in sources:
            mid = str(len(self.streams))
            self.streams[mid] = Stream(
                stream_id=f"{self.endpoint_id}/{mid}",
                endpoint_id=self.endpoint_id,
                kind=KIND[source],
                source=source,
                codec="VP8" if source != "mic" else "OPUS",
                clock_rate=90000 if source != "mic" else 48000,
            )
        return self

    def receive(self, *roles: str) -> FakeMember:
        for role in roles:
            self.outputs[f"r{len(self.outputs)}"] = Output(
                endpoint_id=self.endpoint_id,
                kind=ROLE_KIND[role],
                role=role,
                ssrc=next(_ssrc),
                payload_type=96,
                clock_rate=90000,
            )
        return self

    def request_slots(self, roles: list[str]) -> None:
        self.asked.append(list(roles))

    def post(self, op: Any, droppable: bool = False) -> None:
        pass

    def schedule_close(self) -> None:
        self.replaced = True

    def stats(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint_id}

    def carried(self, role: str) -> list[str | None]:
        """Whose stream each output of the role carries (None: nothing)."""
        return [o.source.stream_id if o.source else None for o in self.outputs.values() if o.role == role]


class FakeExtension:
    """Something attached to a meeting (mcu.meeting.contracts.MeetingExtension)."""

    name = "fake"

    def __init__(self, streams: list[Stream] = (), remote_origin: str | None = None) -> None:
        self.streams = list(streams)
        self.remote_origin = remote_origin
        self.sources: list[Sources] = []
        self.forgotten: list[str] = []
        self.ticks: list[float] = []
        self.stopped = 0

    def published(self) -> list[Stream]:
        return self.streams

    def on_assign(self, sources: Sources) -> None:
        self.sources.append(sources)

    def forget(self, endpoint_id: str) -> None:
        self.forgotten.append(endpoint_id)

    def tick(self, now: float) -> None:
        self.ticks.append(now)

    async def stop(self) -> None:
        self.stopped += 1

    def stats(self) -> dict[str, Any]:
        return {"sources_seen": len(self.sources)}


class FakeComposer(FakeExtension):
    name = "mcu"

    def __init__(self) -> None:
        super().__init__()
        self.started = False
        self.layout: str | None = None

    async def start(self) -> None:
        self.started = True

    def set_layout(self, layout: str | None) -> None:
        self.layout = layout


def join(meeting: Meeting, member: FakeMember) -> FakeMember:
    """What a LocalPeer does once its first offer is answered."""
    meeting.add_peer(member)
    for stream in member.streams.values():
        meeting.router.add_stream(stream)
    meeting.peer_changed(member)
    return member


def test_floor_holders_camera_goes_to_main() -> None:
    m = Meeting("m")
    s = join(m, FakeMember("s").receive("main"))
    join(m, FakeMember("a").publish("camera"))
    join(m, FakeMember("b").publish("camera"))
    assert s.carried("main") == ["a/0"]  # no floor, no speaker: the one it has (no needless switch)
    m.set_floor("b")
    assert s.carried("main") == ["b/0"]
    m.set_floor(None)
    assert s.carried("main") == ["b/0"]


def test_a_subscriber_never_gets_its_own_camera() -> None:
    m = Meeting("m")
    a = join(m, FakeMember("a").publish("camera").receive("main"))
    assert a.carried("main") == [None]
    join(m, FakeMember("b").publish("camera"))
    m.set_floor("a")  # the floor holder sees someone else
    assert a.carried("main") == ["b/0"]


def test_slides_are_asked_for_first_and_carry_the_share() -> None:
    m = Meeting("m")
    s = join(m, FakeMember("s"))
    join(m, FakeMember("a").publish("camera", "mic", "screen"))
    assert s.asked[-1] == ["slides", "main", "audio"]
    s.receive("main", "slides")
    m.assign()
    assert s.carried("slides") == ["a/2"] and s.carried("main") == ["a/0"]


def test_a_congested_subscriber_keeps_the_slides_and_loses_main() -> None:
    m = Meeting("m")
    s = join(m, FakeMember("s").receive("main", "slides"))
    join(m, FakeMember("a").publish("camera", "screen"))
    for out in s.outputs.values():
        out.live, out.fraction_lost = True, 60  # RTCP RR: about 23 % lost
    m.tick(1.0)
    assert s.carried("main") == [None] and s.carried("slides") == ["a/1"]
    for out in s.outputs.values():
        out.fraction_lost = 0
    m.tick(2.0)
    assert s.carried("main") == ["a/0"]


def test_audio_slots_keep_their_stream() -> None:
    m = Meeting("m", audio_slots=2)
    s = join(m, FakeMember("s").receive("audio", "audio"))
    join(m, FakeMember("a").publish("mic"))
    join(m, FakeMember("b").publish("mic"))
    before = s.carried("audio")
    assert sorted(before) == ["a/0", "b/0"]
    join(m, FakeMember("c").publish("mic"))
    m.set_floor("c")  # ranked first: it takes the slot of the one that drops out (a, the oldest)
    after = s.carried("audio")
    assert after[before.index("b/0")] == "b/0"
    assert after[before.index("a/0")] == "c/0"


def test_a_newer_connection_replaces_the_old_one() -> None:
    m = Meeting("m")
    old = join(m, FakeMember("a").publish("camera"))
    new = join(m, FakeMember("a").publish("camera"))
    assert old.replaced and not new.replaced
    assert m.peers["a"] is new
    m.remove_peer(old)  # the old one closing later leaves the new one in place
    assert m.peers["a"] is new


def test_a_leaving_publisher_is_replaced_on_main() -> None:
    m = Meeting("m")
    s = join(m, FakeMember("s").receive("main"))
    a = join(m, FakeMember("a").publish("camera"))
    join(m, FakeMember("b").publish("camera"))
    m.set_floor("a")
    m.remove_peer(a)
    assert s.carried("main") == ["b/0"]


async def test_an_extension_sees_assign_forget_tick_and_stop() -> None:
    m = Meeting("m")
    far = Stream(stream_id="far/0", endpoint_id="far", kind="video", source="camera", codec="VP8", clock_rate=90000)
    ext = FakeExtension([far])
    m.attach(ext)
    s = join(m, FakeMember("s").receive("main"))
    assert s.carried("main") == ["far/0"]  # its streams count as the meeting's sources
    assert [st.stream_id for st in ext.sources[-1].cameras] == ["far/0"]
    a = join(m, FakeMember("a").publish("camera"))
    m.tick(5.0)
    m.remove_peer(a)
    assert ext.forgotten == ["a"] and ext.ticks == [5.0]
    assert m.stats()["fake"] == {"sources_seen": len(ext.sources)}
    await m.stop()
    await m.stop()
    assert ext.stopped == 1 and m.extensions == []


def test_a_floor_held_at_the_origin_routes_to_the_origins_streams() -> None:
    m = Meeting("m")
    main = Stream(
        stream_id="cascade:o/1", endpoint_id="cascade:o", kind="video", source="camera", codec="VP8", clock_rate=90000
    )
    m.attach(FakeExtension([main], remote_origin="cascade:o"))
    s = join(m, FakeMember("s").receive("main"))
    join(m, FakeMember("a").publish("camera"))  # newer than the origin's
    m.set_floor("somebody-at-the-origin")
    assert s.carried("main") == ["cascade:o/1"]
    m.set_floor("a")  # a local holder stays local
    assert s.carried("main") == ["a/0"]


async def test_the_composer_runs_while_an_mcu_member_or_holder_needs_it() -> None:
    made: list[FakeComposer] = []

    def new_composer(meeting: Meeting) -> FakeComposer:
        made.append(FakeComposer())
        return made[-1]

    m = Meeting("m", composer=new_composer)
    join(m, FakeMember("a").publish("camera"))
    assert made == []  # SFU members only: no codecs loaded
    thin = join(m, FakeMember("t", media_mode="mcu"))
    assert len(made) == 1 and m.mcu is made[0] and made[0] in m.extensions
    assert thin.asked[-1] == ["composite", "mix"]
    assert m.hold_mcu("record") is made[0] and m.mcu_holders == {"record"}
    m.remove_peer(thin)
    assert m.mcu is made[0]  # the recording still holds it
    m.release_mcu("record")
    assert m.mcu is None and made[0] not in m.extensions
    await m.stop()
    assert made[0].started and made[0].stopped == 1


def test_an_edge_composes_nothing_itself() -> None:
    made: list[FakeComposer] = []
    m = Meeting("m", composer=lambda meeting: made.append(FakeComposer()) or made[-1])
    m.attach(FakeExtension(remote_origin="cascade:o"))
    join(m, FakeMember("t", media_mode="mcu"))
    assert made == [] and m.mcu_wanted()  # the origin's trunk asks for it instead


def test_a_hold_and_its_release_reach_the_extensions_at_once() -> None:
    m = Meeting("m", composer=lambda meeting: FakeComposer())
    trunk = FakeExtension(remote_origin="cascade:o")  # served from the origin: it asks there
    m.attach(trunk)
    assert m.hold_mcu("record") is None
    assert len(trunk.sources) == 1 and m.mcu_wanted()
    m.release_mcu("record")
    assert len(trunk.sources) == 2 and not m.mcu_wanted()

"""A SIP room's N-1 mix in G.711/G.722, without a network: McuPipeline with Opus publisher streams
in, the room's ``mcu:mix:<ep>`` stream read back as RTP and decoded as the room would."""

import struct

import numpy as np
import pytest

from mcu.api import PeerSpec
from mcu.audio import TELEPHONY, TelephonyDecoder, tone_packets
from mcu.bridge.packetize import Packetizer
from mcu.bridge.pipeline import McuPipeline, _Mix
from mcu.bridge.rendition_policy import audio_profile
from mcu.sfu.router import Router
from mcu.sfu.stream import Stream
from mcu.sfu.subscriber import Output
from tests.mcu.audio.helpers import tone_strengths
from tests.mcu.bridge.test_pipeline_codecs import Peer

TONES = {"laptop": 440.0, "room": 1000.0}
TICKS = 60


def room(codec: str, link: str = "thin") -> tuple[Peer, Output]:
    """A room system whose RTP leg negotiated ``codec`` for audio."""
    spec = PeerSpec("m", "room", "Phòng họp", "participant", link, True, {"transport": "rtp", "audio_codec": codec})
    out = Output(
        endpoint_id="room",
        kind="audio",
        role="mix",
        ssrc=4242,
        payload_type=TELEPHONY[codec].payload_type,
        clock_rate=8000,
        codec=codec,
    )
    peer = Peer("room", spec)
    peer.outputs["mix"] = out
    return peer, out


def test_audio_profile_follows_the_rooms_codec_else_the_link():
    def spec(link: str, extra: dict) -> PeerSpec:
        return PeerSpec("m", "e", "e", "participant", link, True, extra)  # type: ignore[arg-type]

    assert [audio_profile(spec("fibre", {"audio_codec": c})) for c in ("PCMU", "PCMA", "G722", "pcma")] == [
        "pcmu",
        "pcma",
        "g722",
        "pcma",
    ]
    assert audio_profile(spec("fibre", {"audio_codec": "OPUS"})) == "fibre"
    assert audio_profile(spec("thin", {})) == "thin"


@pytest.mark.parametrize("codec", ["PCMU", "PCMA", "G722"])
async def test_a_room_hears_the_other_speaker_in_its_codec_without_its_own_voice(codec):
    pipe = McuPipeline(Router())
    mics = {
        ep: Stream(stream_id=f"{ep}:mic", endpoint_id=ep, kind="audio", source="mic", codec="OPUS", clock_rate=48000)
        for ep in TONES
    }
    try:
        pipe.refresh([], [], list(mics.values()), [], {})
        peer, out = room(codec)
        pipe.attach(peer, out)
        mix = pipe.mixes["room"].stream
        assert (mix.stream_id, mix.codec, mix.clock_rate, out.source) == ("mcu:mix:room", codec, 8000, mix)
        got: list[bytes] = []
        mix.add_tap(got.append)
        sent = {ep: (tone_packets(hz, TICKS), Packetizer()) for ep, hz in TONES.items()}
        for i in range(TICKS):  # the room's voice enters as Opus (its leg transcodes), like a laptop's
            for ep, (packets, packetizer) in sent.items():
                mics[ep].on_rtp(packetizer.audio(packets[i], i * 960))
            pipe.mixer.tick()
        assert len(got) == TICKS
        heads = [struct.unpack_from("!BBHI", p) for p in got]
        assert {h[1] & 0x7F for h in heads} == {TELEPHONY[codec].payload_type}
        assert [(b[2] - a[2]) & 0xFFFF for a, b in zip(heads, heads[1:])] == [1] * (TICKS - 1)
        assert [b[3] - a[3] for a, b in zip(heads, heads[1:])] == [160] * (TICKS - 1)  # 8 kHz RTP clock
        assert {len(p) - 12 for p in got} == {160}
        dec = TelephonyDecoder(codec)
        pcm = np.concatenate([dec.decode(p[12:]) for p in got])
        s = tone_strengths(pcm, TONES.values())
        assert s[TONES["laptop"]] == 1.0 and s[TONES["room"]] < 0.05, s
    finally:
        await pipe.stop()
    assert mix.closed


async def test_a_reinvite_to_another_codec_gives_the_room_a_new_mix_stream():
    pipe = McuPipeline(Router())
    try:
        pipe.attach(*room("PCMU"))
        first = pipe.mixes["room"].stream
        pipe.attach(*room("PCMU"))  # idempotent
        assert pipe.mixes["room"].stream is first
        peer, out = room("G722")
        pipe.attach(peer, out)
        second = pipe.mixes["room"].stream
        assert first.closed and out.source is second
        assert (second.codec, pipe.mixer.listeners["room"].profile) == ("G722", "g722")
        pipe.forget("room")
        assert second.closed and out.source is None and "room" not in pipe.mixer.listeners
    finally:
        await pipe.stop()


def test_mix_timestamps_convert_to_8khz_across_the_mixers_wrap():
    mix = _Mix("room", "pcmu", "PCMU")
    got: list[bytes] = []
    mix.stream.add_tap(got.append)
    for ts in (2**32 - 1920, 2**32 - 960, 0, 960):
        mix.on_packet(b"\xff" * 160, ts)
    stamps = [struct.unpack_from("!I", p, 4)[0] for p in got]
    assert [(b - a) & 0xFFFFFFFF for a, b in zip(stamps, stamps[1:])] == [160, 160, 160]

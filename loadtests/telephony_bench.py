"""SIP room audio benchmark: G.711/G.722 at the mixer's 48 kHz, and the mixer with PCMU rooms.

    .venv/bin/python -m loadtests.telephony_bench [--frames 500] [--seconds 4] [--levels 1,10,50]

Part 1, per codec (PCMU, PCMA, G722), process CPU µs per 20 ms frame (median of 5 rounds):
``decode`` (a room's packet -> 48 kHz float32, ``TelephonyDecoder``), ``encode`` (a 48 kHz mix
frame -> the room's packet, ``TelephonyEncoder``, done once per distinct mix), and ``opus in``
(the decoded room voice encoded as Opus FIBRE for the meeting, what the RTP leg adds per room),
then ``room in`` = decode + opus in. For reference, the split of ``encode`` into the resampler
alone, and the stdlib's ``audioop`` (ratecv + lin2ulaw: no anti-alias filter, removed in Python
3.13), where it still exists.

Part 2: the mixer with 3 Opus speakers and N = 1/10/50 PCMU rooms listening (levels interleaved
in rounds, the median round reported): CPU per 20 ms tick for mix (decode, sum, encode) and
fan-out with each room's RTP packetization (``Packetizer.audio``, as the pipeline does); the
encodes per tick must not grow with N. Prints tables and writes JSON to loadtests/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np

from mcu.audio import FIBRE, TELEPHONY, AudioMixer, OpusEncoder, TelephonyDecoder, TelephonyEncoder, tone_packets
from mcu.audio.codec import make_frame
from mcu.bridge.packetize import Packetizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "loadtests", "results")
SPEAKERS = {"spk-hanoi": 440.0, "spk-haiphong": 1000.0, "spk-laocai": 2500.0}
ROUNDS = 5


def voice(frames: int) -> list[np.ndarray]:
    """20 ms frames of a 48 kHz two-tone signal at speech level."""
    n = np.arange(frames * 960)
    sig = 0.2 * np.sin(2 * np.pi * 440 * n / 48000) + 0.1 * np.sin(2 * np.pi * 1330 * n / 48000)
    return [sig[i * 960 : (i + 1) * 960].astype(np.float32) for i in range(frames)]


Work = Callable[[int], object]


def per_frame_us(works: dict[str, Work], frames: int) -> dict[str, float]:
    """Median over rounds of process CPU µs per call of each ``work(i)``; the works take turns
    within each round, so background load and warm-up hit them alike."""
    rounds: dict[str, list[float]] = {k: [] for k in works}
    for _ in range(ROUNDS):
        for key, work in works.items():
            t0 = time.process_time()
            for i in range(frames):
                work(i)
            rounds[key].append(1e6 * (time.process_time() - t0) / frames)
    return {k: statistics.median(v) for k, v in rounds.items()}


def codec_works(codec: str, frames: int) -> dict[str, Work]:
    """decode, encode, the encoder's resampler alone, and the room's voice into Opus."""
    mix_frames = [make_frame(p) for p in voice(frames)]
    enc = TelephonyEncoder(codec)
    payloads = [enc.encode_frame(f) for f in mix_frames]
    resampler = TelephonyEncoder(codec)._down
    dec = TelephonyDecoder(codec)
    room_frames = [make_frame(p) for p in map(TelephonyDecoder(codec).decode, payloads)]
    opus = OpusEncoder(FIBRE)
    return {
        "decode_us": lambda i: dec.decode(payloads[i]),
        "encode_us": lambda i: enc.encode_frame(mix_frames[i]),
        "encode_resample_us": lambda i: resampler.resample(mix_frames[i]),
        "opus_in_us": lambda i: opus.encode_frame(room_frames[i]),
    }


def codec_costs(frames: int) -> list[dict]:
    works = {(codec, k): w for codec in TELEPHONY for k, w in codec_works(codec, frames).items()}
    costs = per_frame_us({f"{c}/{k}": w for (c, k), w in works.items()}, frames)
    rows = []
    for codec in TELEPHONY:
        row: dict = {"codec": codec, "payload_bytes": len(TelephonyEncoder(codec).encode(voice(1)[0]))}
        row.update({k: costs[f"{codec}/{k}"] for c, k in works if c == codec})
        row["room_in_us"] = row["decode_us"] + row["opus_in_us"]
        rows.append(row)
    return rows


def audioop_cost(frames: int) -> float | None:
    """The stdlib's µ-law path, for reference only (not used: see mcu.audio.telephony)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            return None
    pcm = [(p * 32767).astype(np.int16).tobytes() for p in voice(frames)]
    state: list = [None]

    def work(i: int) -> None:
        down, state[0] = audioop.ratecv(pcm[i], 2, 1, 48000, 8000, state[0])
        audioop.lin2ulaw(down, 2)

    return per_frame_us({"audioop": work}, frames)["audioop"]


class RoomsRun:
    """One mixer: 3 speakers (who also listen, in Opus) and ``rooms`` PCMU rooms, each room's
    payload packetized into RTP like the pipeline's mix stream."""

    def __init__(self, tones: dict[str, list[bytes]], rooms: int):
        self.rooms, self.tones, self.i = rooms, tones, 0
        self.mixer = AudioMixer(max_speakers=3)
        for sid in tones:
            self.mixer.listener(sid, "fibre")
        for n in range(rooms):
            pk = Packetizer(TELEPHONY["PCMU"].payload_type)
            self.mixer.listener(f"room-{n:02d}", "pcmu", lambda p, ts, pk=pk: pk.audio(p, ts // 6))
        self.slices: list[tuple[float, float, int]] = []
        self.ticks = 0
        self.run(10)  # warm up: prefill, encoders created
        self.slices.clear()
        self.ticks, self.enc0 = 0, self.mixer.encodes

    def run(self, ticks: int) -> None:
        mixer, pc = self.mixer, time.process_time
        mix = fan = 0.0
        for _ in range(ticks):
            t0 = pc()
            for sid, pkts in self.tones.items():
                mixer.push(sid, pkts[self.i % len(pkts)], self.i & 0xFFFF, (self.i * 960) & 0xFFFFFFFF, 30)
            self.i += 1
            plan = mixer.collect()
            outputs = mixer.render(plan)
            t1 = pc()
            mixer.fanout(plan, outputs)
            fan += pc() - t1
            mix += t1 - t0
        self.slices.append((mix, fan, ticks))
        self.ticks += ticks

    def result(self) -> dict:
        mix = statistics.median(m / t for m, _, t in self.slices)
        fan = statistics.median(f / t for _, f, t in self.slices)
        return {
            "rooms": self.rooms,
            "encodes_per_tick": (self.mixer.encodes - self.enc0) / self.ticks,
            "pcmu_encodes_per_tick": sum(1 for _, p in self.mixer.last_outputs if p == "pcmu"),
            "mix_us_per_tick": 1e6 * mix,
            "fanout_us_per_tick": 1e6 * fan,
            "fanout_us_per_room": 1e6 * fan / (self.rooms + len(self.tones)),
            "core_pct": 100 * (mix + fan) / 0.020,
        }


def table(head: tuple[str, ...], rows: list[tuple]) -> None:
    print(" | ".join(f"{h:>14}" for h in head))
    for row in rows:
        print(" | ".join(f"{v:>14.1f}" if isinstance(v, float) else f"{v:>14}" for v in row))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=500, help="frames per codec measurement (max 5000)")
    ap.add_argument("--seconds", type=float, default=4.0, help="audio per mixer level (max 30)")
    ap.add_argument("--levels", default="1,10,50")
    args = ap.parse_args()
    frames = min(max(args.frames, 50), 5000)
    seconds = min(max(args.seconds, 0.4), 30.0)

    codecs = codec_costs(frames)
    reference = audioop_cost(frames)
    print(f"\nper 20 ms frame, process CPU µs (median of {ROUNDS} rounds of {frames} frames)")
    table(
        ("codec", "bytes", "decode", "encode", "(resample)", "opus in", "room in"),
        [
            (
                c["codec"],
                c["payload_bytes"],
                c["decode_us"],
                c["encode_us"],
                c["encode_resample_us"],
                c["opus_in_us"],
                c["room_in_us"],
            )
            for c in codecs
        ],
    )
    if reference is not None:
        print(f"reference: stdlib audioop ratecv + lin2ulaw {reference:.1f} µs (no anti-alias filter)")

    tones = {sid: tone_packets(f, 50) for sid, f in SPEAKERS.items()}
    runs = [RoomsRun(tones, int(n)) for n in args.levels.split(",")]
    rounds = 10
    for _ in range(rounds):
        for run in runs:
            run.run(max(1, int(seconds * 50) // rounds))
    levels = [run.result() for run in runs]
    load = os.getloadavg()[0]
    print(f"\nmixer, 3 Opus speakers, N PCMU rooms, {seconds:g} s per level, load average {load:.1f}")
    table(
        ("rooms", "encodes/tick", "pcmu enc/tick", "mix µs/tick", "fanout µs", "fanout µs/room", "% core"),
        [
            (
                r["rooms"],
                r["encodes_per_tick"],
                r["pcmu_encodes_per_tick"],
                r["mix_us_per_tick"],
                r["fanout_us_per_tick"],
                r["fanout_us_per_room"],
                r["core_pct"],
            )
            for r in levels
        ],
    )
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"telephony_bench_{time.strftime('%Y%m%dT%H%M%S')}.json")
    with open(path, "w") as f:
        json.dump(
            {
                "machine": platform.platform(),
                "load_average": load,
                "frames": frames,
                "codecs": codecs,
                "audioop_reference_us": reference,
                "mixer": levels,
            },
            f,
            indent=2,
        )
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()

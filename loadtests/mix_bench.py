"""Audio mixer benchmark: 3 active speakers, N listeners on two profiles (fibre / thin).

    .venv/bin/python -m loadtests.mix_bench --levels 10,50,200 --seconds 5 [--loop uvloop|asyncio]

The speakers are pre-encoded Opus sine tones (440 / 1000 / 2500 Hz, made with PyAV at start),
pushed into the mixer like the SFU will push depacketized RTP payloads. Each speaker also listens
(it gets its mix-minus-me); the N other listeners alternate between the two profiles.

Part 1 (synchronous ticks, process CPU time; the levels run interleaved in 10 rounds and the
median round is reported, so background load hits all levels alike): CPU per 20 ms tick split
into mix (jitter, selection, decode, sum, soft-clip, encode) and fan-out (handing each listener
its payload), CPU per distinct mixed output stream (mix CPU / encodes), and per listener. The
number of encodes per tick must not change with N.
Part 2 (real-time clock, N = the largest level): event-loop lag with the mix run inline on the
loop and offloaded to a one-thread executor, measured by the clock (tick wake-up lateness) and
by a probe coroutine that sleeps 5 ms in a loop (what RTP and signaling tasks would see).
Prints tables and writes JSON to loadtests/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time

import av

from loadtests import loops
from mcu.audio import AudioMixer, MixerClock, libopus, tone_packets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "loadtests", "results")
SPEAKERS = {"spk-hanoi": 440.0, "spk-haiphong": 1000.0, "spk-laocai": 2500.0}
LOOP_FRAMES = 50  # one second of each tone, looped


class Feeder:
    """Pushes the next packet of every speaker (sequence numbers keep growing)."""

    def __init__(self, mixer: AudioMixer, tones: dict[str, list[bytes]]):
        self.mixer, self.tones, self.i = mixer, tones, 0

    def step(self) -> None:
        i = self.i
        for sid, pkts in self.tones.items():
            self.mixer.push(sid, pkts[i % len(pkts)], i & 0xFFFF, (i * 960) & 0xFFFFFFFF, 30)
        self.i += 1


DECODER = "auto"


def build(tones: dict[str, list[bytes]], listeners: int) -> tuple[AudioMixer, Feeder]:
    mixer = AudioMixer(max_speakers=3, decoder=DECODER)
    for sid in tones:
        mixer.listener(sid, "fibre")
    for n in range(listeners):
        mixer.listener(f"xa-{n:03d}", "thin" if n % 2 else "fibre")
    return mixer, Feeder(mixer, tones)


class LevelRun:
    """One mixer with ``listeners`` listeners, measured in slices so that all levels share the
    same background load (rounds interleave the levels; the median slice is reported)."""

    def __init__(self, tones: dict[str, list[bytes]], listeners: int):
        self.listeners = listeners
        self.mixer, self.feed = build(tones, listeners)
        for _ in range(10):  # warm up: prefill, encoders created
            self.feed.step()
            self.mixer.tick()
        self.slices: list[tuple[float, float, int]] = []  # (mix s, fanout s, ticks)
        self.ticks = 0
        self.enc0, self.dec0 = self.mixer.encodes, self.mixer.decodes

    def run(self, ticks: int) -> None:
        mixer, feed, pc = self.mixer, self.feed, time.process_time
        mix_cpu = fan_cpu = 0.0
        for _ in range(ticks):
            t0 = pc()
            feed.step()
            plan = mixer.collect()
            outputs = mixer.render(plan)
            t1 = pc()
            mixer.fanout(plan, outputs)
            t2 = pc()
            mix_cpu += t1 - t0
            fan_cpu += t2 - t1
        self.slices.append((mix_cpu, fan_cpu, ticks))
        self.ticks += ticks

    def result(self) -> dict:
        mixer = self.mixer
        mix = statistics.median(m / t for m, _, t in self.slices)
        fan = statistics.median(f / t for _, f, t in self.slices)
        encodes = (mixer.encodes - self.enc0) / self.ticks
        receivers = len(mixer.listeners)
        total = mix + fan
        return {
            "listeners": self.listeners,
            "receivers": receivers,
            "ticks": self.ticks,
            "encodes_per_tick": encodes,
            "decodes_per_tick": (mixer.decodes - self.dec0) / self.ticks,
            "cpu_per_tick_us": 1e6 * total,
            "mix_cpu_per_tick_us": 1e6 * mix,
            "fanout_cpu_per_tick_us": 1e6 * fan,
            "cpu_per_output_stream_us": 1e6 * mix / encodes,
            "cpu_per_listener_us": 1e6 * total / receivers,
            "fanout_per_listener_us": 1e6 * fan / receivers,
            "core_share_pct": 100 * total / 0.020,
            "outputs": mixer.stats()["outputs_last_tick"],
        }


async def realtime(tones: dict[str, list[bytes]], listeners: int, seconds: float, offload: bool) -> dict:
    mixer, feed = build(tones, listeners)
    loop = asyncio.get_running_loop()
    probe: list[float] = []
    stop = asyncio.Event()

    async def speakers() -> None:  # packets arrive on their own 20 ms schedule
        start = loop.time()
        k = 0
        while not stop.is_set():
            feed.step()
            k += 1
            await asyncio.sleep(max(0.0, start + k * 0.02 - loop.time()))

    async def lag_probe() -> None:
        while not stop.is_set():
            t = loop.time()
            await asyncio.sleep(0.005)
            probe.append(loop.time() - t - 0.005)

    clock = MixerClock(mixer, offload=offload)
    tasks = [loop.create_task(speakers()), loop.create_task(lag_probe())]
    cpu0 = time.process_time()
    t0 = loop.time()
    clock.start()
    await asyncio.sleep(seconds)
    await clock.stop()
    elapsed = loop.time() - t0
    cpu = time.process_time() - cpu0
    stop.set()
    await asyncio.gather(*tasks)
    probe.sort()
    lag = clock.lag_stats()
    received = [lst.received for lst in mixer.listeners.values()]
    return {
        "mode": "offload" if offload else "inline",
        "listeners": listeners,
        "seconds": elapsed,
        "ticks": clock.ticks,
        "ticks_per_s": clock.ticks / elapsed,
        "skipped": clock.skipped,
        "clock_lag_mean_ms": lag["mean_ms"],
        "clock_lag_p99_ms": lag["p99_ms"],
        "clock_lag_max_ms": lag["max_ms"],
        "probe_lag_mean_ms": 1000 * statistics.fmean(probe),
        "probe_lag_p99_ms": 1000 * probe[int(0.99 * (len(probe) - 1))],
        "probe_lag_max_ms": 1000 * probe[-1],
        "process_cpu_pct": 100 * cpu / elapsed,
        "min_packets_per_listener": min(received),
        "concealed": sum(s["concealed"] for s in mixer.stats()["sources"].values()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--levels", default="10,50,200")
    ap.add_argument("--seconds", type=float, default=5.0, help="audio per level (max 30)")
    ap.add_argument("--realtime", type=float, default=3.0, help="seconds per clock run (0: skip)")
    ap.add_argument("--decoder", default="auto", choices=("auto", "libopus", "pyav"))
    loops.add_option(ap, "the real-time clock runs")
    args = ap.parse_args()
    global DECODER
    DECODER = args.decoder
    seconds = min(max(args.seconds, 0.2), 30.0)
    levels = [int(x) for x in args.levels.split(",")]
    tones = {sid: tone_packets(f, LOOP_FRAMES) for sid, f in SPEAKERS.items()}

    runs = [LevelRun(tones, n) for n in levels]
    rounds = 10
    for _ in range(rounds):
        for run in runs:
            run.run(max(1, int(seconds * 50) // rounds))
    rows = [run.result() for run in runs]
    load = os.getloadavg()
    decoder = build(tones, 0)[0].decoder
    print(
        f"\nmixing, 3 speakers, {seconds:g} s of audio per level (process CPU time), "
        f"decoder {decoder} ({libopus.version()}), load average {load[0]:.1f}"
    )
    head = (
        "listeners",
        "encodes/tick",
        "cpu/tick us",
        "mix us",
        "fanout us",
        "us/output stream",
        "us/listener",
        "fanout us/listener",
        "% core",
    )
    print(" | ".join(f"{h:>12}" for h in head))
    for r in rows:
        vals = (
            r["listeners"],
            r["encodes_per_tick"],
            r["cpu_per_tick_us"],
            r["mix_cpu_per_tick_us"],
            r["fanout_cpu_per_tick_us"],
            r["cpu_per_output_stream_us"],
            r["cpu_per_listener_us"],
            r["fanout_per_listener_us"],
            r["core_share_pct"],
        )
        print(" | ".join(f"{v:>12.1f}" if isinstance(v, float) else f"{v:>12}" for v in vals))
    print("distinct outputs:", ", ".join(rows[-1]["outputs"]))

    rt = []
    if args.realtime > 0:
        duration = min(args.realtime, 10.0)
        for offload in (False, True):
            rt.append(loops.run(realtime(tones, levels[-1], duration, offload), args.loop))
        print(
            f"\nreal-time 20 ms clock, {levels[-1]} listeners, {duration:g} s each, {args.loop} loop, "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        head = (
            "mode",
            "ticks/s",
            "skipped",
            "clock lag p99",
            "clock max",
            "probe lag p99",
            "probe max",
            "cpu %",
            "min pkts",
        )
        print(" | ".join(f"{h:>13}" for h in head))
        for r in rt:
            vals = (
                r["mode"],
                r["ticks_per_s"],
                r["skipped"],
                r["clock_lag_p99_ms"],
                r["clock_lag_max_ms"],
                r["probe_lag_p99_ms"],
                r["probe_lag_max_ms"],
                r["process_cpu_pct"],
                r["min_packets_per_listener"],
            )
            print(" | ".join(f"{v:>13.2f}" if isinstance(v, float) else f"{v:>13}" for v in vals))

    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"mix_bench_{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.json")
    with open(path, "w") as fh:
        json.dump(
            {
                "bench": "mix_bench",
                "python": platform.python_version(),
                "pyav": av.__version__,
                "decoder": decoder,
                "seconds": seconds,
                "load_average": load,
                "levels": rows,
                "realtime": rt,
                "realtime_loop": args.loop if rt else None,
            },
            fh,
            indent=2,
        )
    print(f"\nwrote {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    main()

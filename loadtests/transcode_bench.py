"""Transcode benchmark: one 720p H.264 publisher, N VP8-only subscribers (issue #13).

    .venv/bin/python -m loadtests.transcode_bench --subscribers 50 --seconds 8

The media node runs in its own process (``loadtests.sfu_server``, the node's defaults: the
meeting serves VP8 and H.264, the node encodes both). The publisher sends the pre-encoded 720p
H.264 clip of ``sfu_fanout`` (libx264 constrained baseline, ~1.5 Mbit/s). Two windows in one run,
same server, same publisher:

1. ``forward``: N H.264-only subscribers (light: ``sfu_fanout.Sub`` counts SRTP packets at the
   ICE socket): what forwarding the source to N costs, µs per forwarded packet.
2. ``transcode``: those leave; N VP8-only subscribers join, ``--decoders`` of them real aiortc
   receivers that decode every frame (their pictures are compared with the publisher's clip: a
   frame is real when its luma matches some frame of the clip at ``MATCH_PSNR`` dB or more),
   the others light. The node must run ONE transcode for all of them.

Reported: the transcode's CPU (its worker thread's CPU time, ``transcode ...`` threads) per
source frame and in cores; the server's CPU in the transcode window minus what forwarding the
same packets cost in window 1 (the transcode plus its loop-side work: depacketize, packetize,
the converted stream); delivered ratio (packets counted by the light subscribers / packets of the
converted stream x light subscribers) and frames decoded per decoding subscriber / frames sent;
RSS before and after the first VP8 subscriber joins (the transcode starts) less one subscriber's
share measured in window 1: memory per transcoded source; the number of transcodes (must be 1).
``--memory-sources`` (3): then, in this process, that many transcodes of the clip one after the
other, decoder only and then with a VP8 encoder, all kept open: the RSS step of each, the
steady cost per source (the server's first transcode also pays one-time costs).
Prints a table and writes JSON to loadtests/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from loadtests import loops
from loadtests.sfu_fanout import (
    FPS,
    RESULTS,
    Sub,
    encoded_frames,
    media_server,
    prefer,
    quiet,
    start_publisher,
    stats,
)

SAMPLE = (160, 90)  # luma size the decoded pictures are compared at
MATCH_PSNR = 25.0  # dB: a decoded picture this close to a frame of the clip shows the clip
SAMPLES = 24  # pictures kept per decoding subscriber (one a second)


def luma(frame: av.VideoFrame) -> np.ndarray:
    return frame.reformat(width=SAMPLE[0], height=SAMPLE[1], format="gray").to_ndarray().astype(np.float32)


def reference_lumas(frames: list[tuple[bytes, bool]]) -> list[np.ndarray]:
    """The publisher's clip decoded here, at the comparison size."""
    decoder = av.CodecContext.create("h264", "r")
    out = []
    for data, _ in frames:
        out += [luma(f) for f in decoder.decode(av.Packet(data))]
    return out


def best_psnr(sample: np.ndarray, reference: list[np.ndarray]) -> float:
    mse = min(float(np.mean((sample - r) ** 2)) for r in reference)
    return 99.0 if mse == 0 else 10 * np.log10(255**2 / mse)


class DecodingSub:
    """A real receiver: aiortc decodes every frame; sizes and a few pictures are kept."""

    def __init__(self, name: str, codec: str) -> None:
        self.name = name
        self.codec = codec
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.frames = 0
        self.count = 0  # packets: not counted here (the light subscribers count them)
        self.sizes: dict[str, int] = {}
        self.samples: list[np.ndarray] = []
        self.task: asyncio.Task | None = None
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        self.task = asyncio.ensure_future(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            self.frames += 1
            size = f"{frame.width}x{frame.height}"
            self.sizes[size] = self.sizes.get(size, 0) + 1
            if self.frames % FPS == 1 and len(self.samples) < SAMPLES:
                self.samples.append(luma(frame))

    async def join(self, http: aiohttp.ClientSession, url: str) -> None:
        prefer(self.pc.addTransceiver("video", direction="recvonly"), self.codec)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        body = {"endpoint": self.name, "publish": False, "sdp": self.pc.localDescription.sdp}
        async with http.post(f"{url}/join", json=body) as r:
            answer = (await r.json())["sdp"]
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def close(self) -> None:
        await self.pc.close()
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)


async def wait_for(condition: Any, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.1)
    return bool(condition())


def transcode_cpu(s: dict) -> float:
    """CPU seconds of the live transcode worker threads (``mcu.bridge.transcoder``)."""
    return sum(v for k, v in s["threads"].items() if k.startswith("transcode"))


def transcoder_counts(s: dict) -> dict[str, int]:
    """Frames the node's transcodes took in, decoded, dropped (behind or undecodable) and
    encoded, summed over the TranscodePool's stats (mcu.bridge.transcode)."""
    out = {"frames_in": 0, "decoded": 0, "dropped": 0, "frames_out": 0}
    for extensions in s.get("extensions", {}).values():
        for xc in extensions.get("transcode", {}).get("transcodes", []):
            for key in ("frames_in", "decoded", "dropped"):
                out[key] += xc[key]
            out["frames_out"] += sum(t["frames_out"] for t in xc["targets"].values())
    return out


def converted_packets(s: dict) -> tuple[int, int]:
    return sum(c["packets"] for c in s["converted"]), sum(c["forwarded"] for c in s["converted"])


class Window:
    """Server, publisher and subscriber counters over one media window (publisher paused
    before and after, every queue drained: what is sent in the window is received in it)."""

    def __init__(self, http: aiohttp.ClientSession, url: str, track: Any, subs: list) -> None:
        self.http, self.url, self.track, self.subs = http, url, track, subs

    async def run(self, seconds: float) -> dict:
        self.track.running.clear()
        await quiet(self.http, self.url, self.subs)
        s0, n0, c0 = await stats(self.http, self.url), self.track._n, [s.count for s in self.subs]
        f0 = [getattr(s, "frames", 0) for s in self.subs]
        t0 = time.monotonic()
        self.track.running.set()
        await asyncio.sleep(seconds)
        self.track.running.clear()
        s1 = await quiet(self.http, self.url, self.subs)
        await asyncio.sleep(0.5)  # the transcode's last frames, and their decode here
        s1 = await stats(self.http, self.url)
        wall = time.monotonic() - t0
        self.track.running.set()
        (p0, fw0), (p1, fw1) = converted_packets(s0), converted_packets(s1)
        x0, x1 = transcoder_counts(s0), transcoder_counts(s1)
        return {
            "wall_s": wall,
            "frames_sent": self.track._n - n0,
            "server_cpu_s": s1["cpu"] - s0["cpu"],
            "transcode_thread_cpu_s": transcode_cpu(s1) - transcode_cpu(s0),
            "received": s1["received"] - s0["received"],
            "forwarded": s1["forwarded"] - s0["forwarded"] + fw1 - fw0,
            "converted_packets": p1 - p0,
            "transcoder": {k: x1[k] - x0[k] for k in x1},
            "counted": [s.count - c for s, c in zip(self.subs, c0)],
            "frames_decoded": [getattr(s, "frames", 0) - f for s, f in zip(self.subs, f0)],
            "server": s1,
        }


async def measure(args: argparse.Namespace, http: aiohttp.ClientSession, url: str) -> dict:
    frames = encoded_frames(args.bitrate * 1000, "H264")
    reference = reference_lumas(frames)
    pub_pc, track, _ = await start_publisher(http, url, frames, None, "H264")
    n = args.subscribers
    # 1. forward: N H.264 subscribers
    rss0 = (await stats(http, url))["rss"]
    h264 = [Sub(f"h264-{i}", "H264") for i in range(n)]
    for i in range(0, n, args.batch):
        await asyncio.gather(*(s.join(http, url) for s in h264[i : i + args.batch]))
    await wait_for(lambda: all(s.first is not None for s in h264), 20)
    rss_per_sub = ((await stats(http, url))["rss"] - rss0) / n
    fwd = await Window(http, url, track, h264).run(args.seconds)
    us_per_packet = fwd["server_cpu_s"] / fwd["forwarded"] * 1e6 if fwd["forwarded"] else 0.0
    for s in h264:
        async with http.post(f"{url}/leave", json={"endpoint": s.name}):
            pass
        await s.pc.close()
    await asyncio.sleep(1.0)
    # 2. transcode: the first VP8 subscriber starts it
    before = await stats(http, url)
    decoders = [DecodingSub(f"vp8-dec-{i}", "VP8") for i in range(min(args.decoders, n))]
    await decoders[0].join(http, url)
    started = await wait_for(lambda: decoders[0].frames >= FPS, 20)
    await asyncio.sleep(1.0)
    after = await stats(http, url)
    light = [Sub(f"vp8-{i}", "VP8") for i in range(n - len(decoders))]
    joining = [*decoders[1:], *light]
    for i in range(0, len(joining), args.batch):
        await asyncio.gather(*(s.join(http, url) for s in joining[i : i + args.batch]))
    await wait_for(lambda: all(s.first is not None for s in light) and all(d.frames for d in decoders), 20)
    xc = await Window(http, url, track, [*light, *decoders]).run(args.seconds)
    server = xc.pop("server")
    fwd.pop("server")
    counted = xc["counted"][: len(light)]
    decoded = xc["frames_decoded"][len(light) :]
    psnrs = [best_psnr(x, reference) for d in decoders for x in d.samples]
    frames_sent = max(1, xc["frames_sent"])
    transcoded = max(1, xc["transcoder"]["frames_out"])
    loop_side = xc["server_cpu_s"] - us_per_packet * 1e-6 * xc["forwarded"]
    pool = [e for m in server.get("extensions", {}).values() for k, e in m.items() if k == "transcode"]
    result = {
        "publisher_codec": "H264",
        "subscriber_codec": "VP8",
        "subscribers": n,
        "decoding_subscribers": len(decoders),
        "light_subscribers": len(light),
        "transcode_started": started,
        "transcodes": len(server["converted"]),
        "transcodes_started_by_pool": sum(p.get("started", 0) for p in pool),
        "forward": {
            **fwd,
            "us_per_forwarded_packet": us_per_packet,
            "delivered_ratio": sum(fwd["counted"]) / (fwd["received"] * n) if fwd["received"] else 0.0,
        },
        "transcode": xc,
        "transcode_ms_per_frame": xc["transcode_thread_cpu_s"] / transcoded * 1e3,
        "transcode_cores": xc["transcode_thread_cpu_s"] / xc["wall_s"],
        "server_ms_per_frame_beyond_forwarding": loop_side / frames_sent * 1e3,
        "server_cores": xc["server_cpu_s"] / xc["wall_s"],
        "delivered_ratio": sum(counted) / (xc["converted_packets"] * len(light)) if xc["converted_packets"] else 0.0,
        "frames_ratio_min": min(decoded) / frames_sent if decoded else 0.0,
        "transcoded_ratio": xc["transcoder"]["frames_out"] / frames_sent,
        "decoded_sizes": [d.sizes for d in decoders],
        "pictures_matched": sum(p >= MATCH_PSNR for p in psnrs),
        "pictures_compared": len(psnrs),
        "psnr_median_db": statistics.median(psnrs) if psnrs else None,
        "rss_before_mib": before["rss"] / 2**20,
        "rss_after_mib": after["rss"] / 2**20,
        "rss_per_subscriber_kib": rss_per_sub / 1024,
        "rss_per_transcode_mib": (after["rss"] - before["rss"] - rss_per_sub) / 2**20,
        "av_loaded_before": before["av_loaded"],
        "converted": server["converted"],
        "pool": pool,
        "keyframes_forced": track.keyframes_forced,
    }
    for s in [*light, *decoders]:
        await (s.close() if isinstance(s, DecodingSub) else s.pc.close())
    await pub_pc.close()
    return result


def table(r: dict) -> str:
    f, x = r["forward"], r["transcode"]
    return "\n".join(
        [
            f"1 H.264 720p publisher, {r['subscribers']} subscribers; server loop {r['loop']}, "
            f"load avg {r['load_avg'][0]:.2f} (start) / {r['load_avg_end'][0]:.2f} (end) on {r['cores']} cores",
            f"{'window':<10} {'frames':>6} {'srv cpu s':>9} {'srv cores':>9} {'us/pkt':>7} {'xc ms/fr':>8} "
            f"{'xc cores':>8} {'deliv%':>7} {'xc out%':>7} {'dec fr%':>7}",
            f"{'forward':<10} {f['frames_sent']:>6} {f['server_cpu_s']:>9.2f} {f['server_cpu_s'] / f['wall_s']:>9.2f} "
            f"{f['us_per_forwarded_packet']:>7.1f} {'-':>8} {'-':>8} {f['delivered_ratio'] * 100:>7.2f} {'-':>7} {'-':>7}",
            f"{'transcode':<10} {x['frames_sent']:>6} {x['server_cpu_s']:>9.2f} {r['server_cores']:>9.2f} "
            f"{'-':>7} {r['transcode_ms_per_frame']:>8.2f} {r['transcode_cores']:>8.2f} "
            f"{r['delivered_ratio'] * 100:>7.2f} {r['transcoded_ratio'] * 100:>7.1f} {r['frames_ratio_min'] * 100:>7.1f}",
            "transcoder in the window: {frames_in} frames in, {decoded} decoded, {dropped} dropped, "
            "{frames_out} encoded (xc ms/fr = its thread's CPU per encoded frame; xc out% = encoded / sent; "
            "dec fr% = frames the slowest decoding subscriber decoded / sent)".format(**x["transcoder"]),
            f"server CPU per frame beyond forwarding: {r['server_ms_per_frame_beyond_forwarding']:.2f} ms per sent frame "
            f"(transcode thread {r['transcode_ms_per_frame']:.2f} ms per encoded frame)",
            f"transcodes: {r['transcodes']} (pool started {r['transcodes_started_by_pool']}); "
            f"RSS {r['rss_before_mib']:.1f} -> {r['rss_after_mib']:.1f} MiB when it started: "
            f"{r['rss_per_transcode_mib']:.1f} MiB per transcoded source "
            f"(less {r['rss_per_subscriber_kib']:.0f} KiB for the subscriber"
            + ("" if r["av_loaded_before"] else "; includes loading PyAV's libraries, once per process")
            + ")",
            f"decoded: sizes {r['decoded_sizes']}; pictures matching the clip "
            f"{r['pictures_matched']}/{r['pictures_compared']} (median PSNR {r['psnr_median_db'] or 0:.1f} dB)",
        ]
        + [
            f"RSS in this process, {what}, per transcode in turn: "
            + ", ".join(f"+{b - a:.1f}" for a, b in zip(marks, marks[1:]))
            + " MiB"
            for what, marks in r.get("memory_in_process_mib", {}).items()
        ]
    )


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def marginal_memory(sources: int, encode: bool, transcoders: list) -> list[float]:
    """RSS (MiB) in THIS process before and after each of ``sources`` transcodes
    (``mcu.bridge.transcoder.Transcoder`` on a Stream fed the clip's RTP, 3 s each): the
    server's first transcode also pays one-time costs, the next ones show the steady cost.
    ``encode``: with a VP8 target (decode + encode), else the decoder alone. The transcodes
    stay open (in ``transcoders``, for the caller to stop): freed memory would be reused."""
    from mcu.bridge.packetize import Packetizer
    from mcu.bridge.transcoder import Transcoder
    from mcu.sfu.stream import Stream

    frames = encoded_frames(codec="H264")
    marks = [rss_mib()]
    for k in range(sources):
        stream = Stream(
            stream_id=f"m{k}", endpoint_id=f"m{k}", kind="video", source="camera", codec="H264", clock_rate=90000
        )
        xc = Transcoder(stream)
        if encode:
            xc.target("VP8")
        transcoders.append(xc)
        packetizer = Packetizer()
        for i in range(3 * FPS):
            for packet in packetizer.h264(frames[i % len(frames)][0], i * 90000 // FPS):
                stream.on_rtp(packet)
            await asyncio.sleep(1 / FPS)
        await asyncio.sleep(0.5)
        marks.append(rss_mib())
    return marks


async def run(args: argparse.Namespace) -> dict:
    load = os.getloadavg()
    with media_server(args) as url:
        async with aiohttp.ClientSession() as http:
            loop = (await stats(http, url))["loop"]
            result = await measure(args, http, url)
    if args.memory_sources:
        transcoders: list = []
        result["memory_in_process_mib"] = {
            "decode only": await marginal_memory(args.memory_sources, False, transcoders),
            "decode+encode": await marginal_memory(args.memory_sources, True, transcoders),
        }
        for xc in transcoders:
            await xc.stop()
    return {
        "benchmark": "transcode_bench",
        "loop": loop,
        "client_loop": loops.running(),
        "load_avg": load,
        "load_avg_end": os.getloadavg(),
        "cores": os.cpu_count(),
        "seconds_per_window": args.seconds,
        **result,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--decoders", type=int, default=3, help="of the subscribers, how many decode (>= 1)")
    parser.add_argument("--seconds", type=float, default=8.0, help="per window (max 60)")
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--bitrate", type=int, default=1500, help="kbit/s of the publisher's clip")
    parser.add_argument("--memory-sources", type=int, default=3, help="transcodes in this process for RSS (0: none)")
    parser.add_argument("--max-seconds", type=float, default=240.0, help="the server exits after this")
    loops.add_option(parser, "the media node (the load clients run asyncio)")
    args = parser.parse_args()
    args.seconds = min(args.seconds, 60.0)
    args.decoders = max(1, args.decoders)
    args.memory_sources = max(0, min(args.memory_sources, 8))
    result = asyncio.run(asyncio.wait_for(run(args), args.max_seconds))
    print(table(result))
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"transcode_bench_{time.strftime('%Y%m%dT%H%M%S')}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2, default=str)
    print(f"results: {path}")


if __name__ == "__main__":
    main()

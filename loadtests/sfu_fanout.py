"""Fan-out benchmark: one 720p VP8 publisher (~1.5 Mbit/s, pre-encoded) to N subscribers.

    .venv/bin/python -m loadtests.sfu_fanout --levels 10,50,100,200 --seconds 5
    .venv/bin/python -m loadtests.sfu_fanout --loop asyncio --bitrate 4000 --publisher paced
    .venv/bin/python -m loadtests.sfu_fanout --levels 100 --codecs VP8,H264 --rounds 3

The media node runs in its own process (``loadtests.sfu_server``); the publisher and the
subscribers run here. Subscribers are light: aiortc negotiates ICE and DTLS, then a hook on the
ICE socket counts SRTP packets without decrypting or decoding. One extra subscriber stops
reading its socket after joining (its queue overflows; the others must be unaffected).

Reported per level: server CPU time per forwarded packet (server process CPU time / packets x
subscribers sent), delivered ratio (packets counted by the N reading subscribers / packets the
publisher sent x N), join-to-first-packet time (median, p95; the first packet a subscriber gets
is always the start of a key frame), server memory per subscriber. Prints a table and writes
JSON to loadtests/results/.

The server runs on ``--loop`` (loadtests/loops.py; uvloop by default, as ``giaoban serve``);
the load clients here run asyncio's loop: the stalled subscriber stops reading with
``pause_reading``, which uvloop's UDP transport lacks.

Ingress (issue #11, item 14), per window: the server's event-loop lag (max, p99), the
receive-buffer drops at the server's own sockets (``ss -uam``'s d<n>, loadtests/udpstat.py),
the machine-wide ``RcvbufErrors`` (includes the stalled subscriber's own drops), and the loss
the server's receiver reports told the publisher. ``--publisher bursty`` sends each frame's
packets back to back, as aiortc does; ``paced`` spreads them at 2.5x the stream's rate, like
libwebrtc's pacer.

Codecs (issue #13): ``--codecs VP8,H264`` runs the levels once per codec and ``--rounds`` times, in
the order VP8, H264, VP8, H264..., each on a server of its own; the same picture is pre-encoded
with libx264 (constrained baseline) for H.264; the publisher and the subscribers offer only the
codec under test, so the node forwards it untouched. A last table puts the codecs side by side
per level: median µs/packet over the rounds and the ratio to the first codec.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import os
import pickle
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from loadtests import loops
from loadtests.udpstat import ingress, ingress_row

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "loadtests", "results")
FPS = 30
GOP = 60
FRAMES = 120
BITRATE = 1_500_000
PACE_FACTOR = 2.5  # paced publisher: bursts at most this times the stream's average rate


# -- pre-encoded 720p VP8 and H.264 ---------------------------------------------------------

CODECS = ("VP8", "H264")


def _picture(i: int, bg: np.ndarray, tex: np.ndarray) -> av.VideoFrame:
    """Frame ``i`` of the clip: smooth gradient, a fine static texture scrolling sideways and
    moving blocks: a key frame of ~110 KB and ~1.5 Mbit/s, like a camera picture of a meeting
    room (pure noise would give 600 KB key frames)."""
    img = bg + np.roll(tex, i * 3, axis=1)
    for k in range(6):
        x = (i * (5 + k) * 3 + k * 200) % 1100
        y = (k * 110 + i * 2) % 600
        img[y : y + 120, x : x + 180] = (k * 40, 255 - k * 40, 128)
    frame = av.VideoFrame.from_ndarray(np.clip(img, 0, 255).astype(np.uint8), format="rgb24")
    return frame.reformat(format="yuv420p")


def _encoder(codec: str, bitrate: int) -> av.CodecContext:
    """libvpx realtime, or libx264 constrained baseline (no B-frames, SPS/PPS before every
    IDR), as the clients the issue names send; a key frame every 2 s either way."""
    if codec == "VP8":
        ctx = av.CodecContext.create("libvpx", "w")
        ctx.options = {
            "deadline": "realtime",
            "cpu-used": "8",
            "lag-in-frames": "0",
            "kf-max-dist": str(GOP),
            "kf-min-dist": str(GOP),
        }
    else:
        ctx = av.CodecContext.create("libx264", "w")
        ctx.options = {
            "preset": "veryfast",
            "tune": "zerolatency",
            "profile": "baseline",
            "maxrate": str(bitrate),
            "bufsize": str(bitrate),
            "x264-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0:repeat-headers=1",
        }
    ctx.width, ctx.height = 1280, 720
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = fractions.Fraction(1, FPS)
    ctx.framerate = fractions.Fraction(FPS, 1)
    ctx.bit_rate = bitrate
    ctx.gop_size = GOP
    ctx.thread_count = 2
    return ctx


def encoded_frames(bitrate: int = BITRATE, codec: str = "VP8") -> list[tuple[bytes, bool]]:
    """120 frames of 1280x720 ``codec`` at ~``bitrate`` (key frame every 2 s), cached on disk."""
    os.makedirs(RESULTS, exist_ok=True)
    suffix = "" if bitrate == BITRATE else f"_{bitrate // 1000}k"
    cache = os.path.join(RESULTS, f"{codec.lower()}_720p_frames{suffix}.pkl")
    if os.path.exists(cache):
        with open(cache, "rb") as f:
            return pickle.load(f)
    ctx = _encoder(codec, bitrate)
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:720, 0:1280]
    bg = np.stack([xx * 255 // 1280, yy * 255 // 720, (xx + yy) * 255 // 2000], axis=-1).astype(np.int16)
    tex = rng.integers(-12, 13, size=(720, 1280, 3), dtype=np.int16)
    out: list[tuple[bytes, bool]] = []
    for i in range(FRAMES + 1):
        frame = None
        if i < FRAMES:
            frame = _picture(i, bg, tex)
            frame.pts = i
        for packet in ctx.encode(frame):
            out.append((bytes(packet), bool(packet.is_keyframe)))
    with open(cache, "wb") as f:
        pickle.dump(out, f)
    return out


class PreencodedTrack(MediaStreamTrack):
    """Yields pre-encoded packets (VP8 or H.264) at 30 fps; a PLI makes it jump to a key frame."""

    kind = "video"

    def __init__(self, frames: list[tuple[bytes, bool]]) -> None:
        super().__init__()
        self.frames = frames
        self.keys = [i for i, (_, k) in enumerate(frames) if k] or [0]
        self.sender: Any = None
        self.running = asyncio.Event()
        self.running.set()
        self._i = 0
        self._n = 0
        self._t0: float | None = None
        self.keyframes_forced = 0

    async def recv(self) -> av.Packet:
        await self.running.wait()
        if self._t0 is None:
            self._t0 = time.monotonic()
        delay = self._t0 + self._n / FPS - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            self._t0 -= delay  # do not burst after a pause
        if self.sender is not None and getattr(self.sender, "_RTCRtpSender__force_keyframe", False):
            self.sender._RTCRtpSender__force_keyframe = False
            self._i = self.keys[0]
            self.keyframes_forced += 1
        data, _ = self.frames[self._i % len(self.frames)]
        self._i = (self._i + 1) % len(self.frames)
        packet = av.Packet(data)
        packet.pts = self._n * (90000 // FPS)
        packet.time_base = fractions.Fraction(1, 90000)
        self._n += 1
        return packet


# -- clients --------------------------------------------------------------------------------


def hook_count(pc: RTCPeerConnection, sub: "Sub") -> None:
    """Count SRTP packets at the ICE socket, before DTLS/SRTP; pass everything else on."""
    conn = pc.getTransceivers()[0].receiver.transport.transport._connection
    for proto in conn._protocols:
        original = proto.datagram_received

        def counting(data: bytes, addr: Any, original: Any = original) -> None:
            b0 = data[0]
            if 127 < b0 < 192 and not (191 < data[1] < 209):
                sub.count += 1
                if sub.first is None:
                    sub.first = time.monotonic()
                return
            original(data, addr)

        proto.datagram_received = counting
        sock = proto.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sub.protocols.append(proto)


def prefer(transceiver: Any, codec: str) -> None:
    """Offer only ``codec`` (and RTX): the server must forward, never transcode, to this peer."""
    caps = RTCRtpSender.getCapabilities("video").codecs
    transceiver.setCodecPreferences([c for c in caps if c.mimeType in (f"video/{codec}", "video/rtx")])


class Sub:
    def __init__(self, name: str, codec: str = "VP8") -> None:
        self.name = name
        self.codec = codec
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.count = 0
        self.first: float | None = None
        self.t_join = 0.0
        self.protocols: list[Any] = []

    async def join(self, http: aiohttp.ClientSession, url: str) -> None:
        self.t_join = time.monotonic()
        prefer(self.pc.addTransceiver("video", direction="recvonly"), self.codec)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        hook_count(self.pc, self)
        async with http.post(
            f"{url}/join", json={"endpoint": self.name, "publish": False, "sdp": self.pc.localDescription.sdp}
        ) as r:
            answer = (await r.json())["sdp"]
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    def stall(self) -> None:
        for proto in self.protocols:
            proto.transport.pause_reading()


async def start_publisher(
    http: aiohttp.ClientSession, url: str, frames: list, pace_bps: float | None = None, codec: str = "VP8"
) -> tuple:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    track = PreencodedTrack(frames)
    transceiver = pc.addTransceiver(track, direction="sendonly")
    prefer(transceiver, codec)
    track.sender = transceiver.sender
    await pc.setLocalDescription(await pc.createOffer())
    async with http.post(
        f"{url}/join", json={"endpoint": "publisher", "publish": True, "sdp": pc.localDescription.sdp}
    ) as r:
        answer = (await r.json())["sdp"]
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    dtls = transceiver.sender.transport
    sent = {"rtp": 0}
    original = dtls._send_rtp
    pace = {"next": 0.0}

    async def counting_send(data: bytes) -> None:
        if not (191 < data[1] < 209):
            sent["rtp"] += 1
            if pace_bps:  # aiortc awaits each packet of a frame: sleeping here paces them
                now = time.monotonic()
                t = max(now, pace["next"])
                pace["next"] = t + len(data) * 8 / pace_bps
                if t - now > 0.001:
                    await asyncio.sleep(t - now)
        await original(data)

    dtls._send_rtp = counting_send
    return pc, track, sent


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


async def run(args: argparse.Namespace) -> dict:
    """One server per (round, codec), in the order VP8, H264, VP8, H264...: drift of the
    machine's load spreads over both codecs."""
    windows = []
    for rnd in range(args.rounds):
        for codec in args.codecs:
            print(f"-- round {rnd + 1}, {codec} publisher and subscribers", flush=True)
            windows.append({"round": rnd + 1, **await run_codec(args, codec)})
    return {
        "benchmark": "sfu_fanout",
        "codecs": args.codecs,
        "rounds": args.rounds,
        "loop": windows[0]["loop"],
        "client_loop": windows[0]["client_loop"],
        "publisher": args.publisher,
        "resolution": "1280x720",
        "fps": FPS,
        "seconds_per_level": args.seconds,
        "cores": os.cpu_count(),
        "load_avg": os.getloadavg(),
        "runs": windows,
        "comparison": compare(windows, args.codecs),
    }


@contextlib.contextmanager
def media_server(args: argparse.Namespace, *extra: str) -> Iterator[str]:
    """``loadtests.sfu_server`` in its own process (``args.server_pid``); yields its URL."""
    server = subprocess.Popen(
        [sys.executable, "-m", "loadtests.sfu_server", "--max-seconds", str(args.max_seconds), "--loop", args.loop]
        + list(extra)
        + (["--stall-report"] if getattr(args, "stall_report", False) else []),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    args.server_pid = server.pid
    try:
        line = server.stdout.readline().decode()  # type: ignore[union-attr]
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()


async def run_codec(args: argparse.Namespace, codec: str) -> dict:
    frames = encoded_frames(args.bitrate * 1000, codec)
    kbps = sum(len(d) for d, _ in frames) * 8 / (len(frames) / FPS) / 1000
    args.pace_bps = kbps * 1000 * PACE_FACTOR if args.publisher == "paced" else None
    with media_server(args, "--codec", codec) as url:
        async with aiohttp.ClientSession() as http:
            return await measure(args, http, url, frames, kbps, codec)


def compare(windows: list[dict], codecs: list[str]) -> list[dict]:
    """Per level: median µs/packet and delivered ratio of each codec over the rounds, and the
    ratio of each codec's µs/packet to the first codec's."""
    out = []
    levels = sorted({r["subscribers"] for w in windows for r in w["rows"]})
    for level in levels:
        row: dict[str, Any] = {"subscribers": level}
        for codec in codecs:
            rows = [r for w in windows if w["codec"] == codec for r in w["rows"] if r["subscribers"] == level]
            us = [r["us_per_forwarded_packet"] for r in rows if r["us_per_forwarded_packet"]]
            row[codec] = {
                "us_per_packet": statistics.median(us) if us else None,
                "us_per_packet_each": us,
                "delivered_ratio": min((r["delivered_ratio"] or 0 for r in rows), default=None),
                "stream_kbps": next((w["stream_kbps"] for w in windows if w["codec"] == codec), None),
            }
        base = row[codecs[0]]["us_per_packet"]
        for codec in codecs[1:]:
            us = row[codec]["us_per_packet"]
            row[codec]["ratio_to_" + codecs[0]] = us / base if us and base else None
        out.append(row)
    return out


def print_comparison(comparison: list[dict], codecs: list[str]) -> None:
    print(
        f"{'subs':>5} "
        + " ".join(f"{c + ' us/pkt (each round)':>26} {c + ' deliv%':>11}" for c in codecs)
        + "".join(f" {c + '/' + codecs[0]:>10}" for c in codecs[1:])
    )
    for row in comparison:
        cells = []
        for c in codecs:
            us, d = row[c]["us_per_packet"], row[c]["delivered_ratio"]
            each = "/".join(f"{x:.1f}" for x in row[c]["us_per_packet_each"])
            cells.append(f"{(us or float('nan')):>6.1f} ({each:>17}) {(d or 0) * 100:>11.2f}")
        ratios = "".join(f" {row[c]['ratio_to_' + codecs[0]] or float('nan'):>10.3f}" for c in codecs[1:])
        print(f"{row['subscribers']:>5} " + " ".join(cells) + ratios)


async def stats(http: aiohttp.ClientSession, url: str, reset_lag: bool = False) -> dict:
    async with http.get(f"{url}/stats", params={"lag": "reset"} if reset_lag else None) as r:
        return await r.json()


async def quiet(http: aiohttp.ClientSession, url: str, subs: list, limit: float = 8.0) -> dict:
    """Wait (publisher paused) until the server and every subscriber have drained."""
    await asyncio.sleep(0.3)
    last = await stats(http, url)
    counts = sum(s.count for s in subs)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        await asyncio.sleep(0.3)
        now = await stats(http, url)
        now_counts = sum(s.count for s in subs)
        if now["received"] == last["received"] and now_counts == counts:
            return now
        last, counts = now, now_counts
    return last


async def measure(
    args: argparse.Namespace, http: aiohttp.ClientSession, url: str, frames: list, kbps: float, codec: str = "VP8"
) -> dict:
    base = await stats(http, url)
    pub_pc, track, sent = await start_publisher(http, url, frames, args.pace_bps, codec)
    subs: list[Sub] = []
    stalled = Sub("stalled", codec)
    await stalled.join(http, url)
    rows = []
    t_end = time.monotonic() + args.max_seconds
    for level in args.levels:
        before_join = await stats(http, url)
        new = [Sub(f"sub{i}", codec) for i in range(len(subs), level)]
        for i in range(0, len(new), args.batch):
            await asyncio.gather(*(s.join(http, url) for s in new[i : i + args.batch]))
        subs.extend(new)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(s.first is None for s in subs + [stalled]):
            await asyncio.sleep(0.1)
        if stalled.protocols and stalled.protocols[0].transport.is_reading():
            stalled.stall()
        await asyncio.sleep(1.0)
        after_join = await stats(http, url)
        joins = [s.first - s.t_join for s in new if s.first is not None]
        if args.profile and level == args.levels[-1]:
            async with http.post(f"{url}/profile", json={"start": True}):
                pass
        # quiet point: pause the publisher and let every queue drain, so that each packet
        # sent in the window is also received (or lost) in it
        track.running.clear()
        s_idle = await quiet(http, url, subs)
        await asyncio.sleep(2.0)  # idle cost of N connected peers (no media)
        s0 = await stats(http, url, reset_lag=True)
        i0 = await ingress(args.server_pid, pub_pc)
        idle_share = (s0["cpu"] - s_idle["cpu"]) / 2.0
        c0 = [s.count for s in subs]
        stalled0 = stalled.count
        p0 = sent["rtp"]
        track.running.set()
        t_window = time.monotonic()
        await asyncio.sleep(args.seconds)
        track.running.clear()  # pause the publisher, let packets drain
        s1 = await quiet(http, url, subs)
        i1 = await ingress(args.server_pid, pub_pc)
        c1 = [s.count for s in subs]
        p1 = sent["rtp"]
        track.running.set()
        if args.profile and level == args.levels[-1]:
            async with http.post(f"{url}/profile", json={}) as r:
                print((await r.json())["text"])
        n_sent = p1 - p0
        window = time.monotonic() - t_window
        received = sum(b - a for a, b in zip(c0, c1))
        forwarded = s1["forwarded"] - s0["forwarded"]
        cpu = s1["cpu"] - s0["cpu"]
        rows.append(
            {
                "codec": codec,
                "subscribers": level,
                "publisher_packets": n_sent,
                "forwarded": forwarded,
                "server_received": s1["received"] - s0["received"],
                "us_per_forwarded_packet": cpu / forwarded * 1e6 if forwarded else None,
                "server_cpu_s": cpu,
                "server_user_s": s1["utime"] - s0["utime"],
                "server_system_s": s1["stime"] - s0["stime"],
                "server_cpu_share": cpu / window,
                "window_seconds": window,
                "server_idle_cpu_share": idle_share,
                "us_per_forwarded_packet_minus_idle": (cpu - idle_share * window) / forwarded * 1e6
                if forwarded
                else None,
                "delivered_ratio": received / (n_sent * level) if n_sent else None,
                "join_first_packet_median_ms": statistics.median(joins) * 1000 if joins else None,
                "join_first_packet_p95_ms": pct(joins, 0.95) * 1000 if joins else None,
                "joined_without_packet": len(new) - len(joins),
                "rss_per_subscriber_kib": (after_join["rss"] - before_join["rss"]) / max(1, len(new)) / 1024,
                "server_rss_mib": after_join["rss"] / 2**20,
                "stalled_subscriber_drops_at_server": s1["dropped"],
                "stalled_subscriber_packets_read_in_window": stalled.count - stalled0,
                "server_tasks": s1["tasks"],
                # the node must forward untouched: a transcode here would make µs/packet meaningless
                "transcodes": len(s1.get("converted", [])),
                **ingress_row(i0, i1, s1),
            }
        )
        print_row(rows[-1])
        if rows[-1]["transcodes"]:
            print(f"!! the node transcoded {codec} for these subscribers: not a forwarding figure", flush=True)
        if time.monotonic() > t_end:
            break
    for s in subs + [stalled]:
        await s.pc.close()
    await pub_pc.close()
    return {
        "codec": codec,
        "server_codec": base.get("codec", codec),
        "loop": base["loop"],
        "client_loop": loops.running(),
        "stream_kbps": round(kbps),
        "server_baseline_rss_mib": base["rss"] / 2**20,
        "keyframes_forced": track.keyframes_forced,
        "load_avg": os.getloadavg(),
        "rows": rows,
    }


HEADER = (
    f"{'codec':>5} {'subs':>5} {'us/pkt':>8} {'deliv%':>8} {'pub pkts':>9} {'fwd pkts':>9} "
    f"{'cpu%':>6} {'join med':>9} {'join p95':>9} {'KiB/sub':>8} {'lag max':>8} "
    f"{'lag p99':>8} {'sockdrop':>8} {'rcvbufE':>8} {'pub lost':>8}"
)


def print_row(r: dict) -> None:
    if r is None:
        print(HEADER)
        return
    us = r["us_per_forwarded_packet"]
    ratio = r["delivered_ratio"]
    print(
        f"{r['codec']:>5} {r['subscribers']:>5} {us if us is not None else float('nan'):>8.1f} "
        f"{(ratio or 0) * 100:>8.2f} {r['publisher_packets']:>9} {r['forwarded']:>9} "
        f"{r['server_cpu_share'] * 100:>6.1f} {r['join_first_packet_median_ms'] or 0:>8.0f}ms "
        f"{r['join_first_packet_p95_ms'] or 0:>7.0f}ms {r['rss_per_subscriber_kib']:>8.0f} "
        f"{r['loop_lag_max_ms']:>6.0f}ms {r['loop_lag_p99_ms']:>6.0f}ms "
        f"{r['server_socket_drops']:>8} {r['rcvbuf_errors_machine']:>8} "
        f"{r['publisher_reported_lost']:>8}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="10,50,100,200")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--max-seconds", type=float, default=240.0)
    parser.add_argument("--profile", action="store_true")
    loops.add_option(parser, "the media node (the load clients run asyncio)")
    parser.add_argument("--bitrate", type=int, default=BITRATE // 1000, help="kbit/s")
    parser.add_argument("--publisher", choices=("bursty", "paced"), default="bursty")
    parser.add_argument(
        "--codecs", default="VP8", help="publisher codecs, comma-separated (VP8,H264): one server each, side by side"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="repeat the codecs in turn (VP8, H264, VP8, H264...), at most 10"
    )
    parser.add_argument(
        "--stall-report", action="store_true", help="the server prints the stacks its loop was stuck in, at exit"
    )
    args = parser.parse_args()
    args.levels = sorted(int(x) for x in args.levels.split(","))
    args.codecs = [c.strip().upper() for c in args.codecs.split(",")]
    args.rounds = max(1, min(args.rounds, 10))  # each round starts a server per codec
    if any(c not in CODECS for c in args.codecs):
        parser.error(f"--codecs: each of {', '.join(CODECS)}")
    print(HEADER)
    result = asyncio.run(run(args))  # asyncio: the stalled subscriber needs pause_reading
    if len(args.codecs) > 1:
        print_comparison(result["comparison"], args.codecs)
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"sfu_fanout_{time.strftime('%Y%m%dT%H%M%S')}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    kbps = ", ".join(f"{c['codec']} {c['stream_kbps']}" for c in result["runs"][: len(args.codecs)])
    print(
        f"streams (kbit/s): {kbps}; {args.publisher} publisher, server loop "
        f"{result['loop']}, client loop {result['client_loop']}; results: {path}"
    )


if __name__ == "__main__":
    main()

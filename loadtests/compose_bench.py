"""Compositor benchmark: 9 VP8 sources -> one 3x3 720p30 composite, encoded for 3 renditions.

    .venv/bin/python -m loadtests.compose_bench --seconds 10 [--loop uvloop|asyncio]
    .venv/bin/python -m loadtests.compose_bench --codecs vp8,h264 --rounds 2   # against VP8 only

``--codecs``: the composite is encoded in each of these codecs at every rendition at once (720p,
360p, 180p in VP8 and in H.264 for ``vp8,h264``), as in a meeting with subscribers of both
kinds; renditions are named as the MCU pipeline names them (``720p``, ``h264:720p``). When it
differs from ``--baseline`` (``vp8``), the baseline runs too, in the same process on the same
clips, first in each of ``--rounds`` rounds, and a side-by-side table ends the output.
``--h264-encoders libx264,h264_nvenc`` runs ``--codecs`` once per H.264 encoder (where there is no
NVIDIA GPU, h264_nvenc cannot open and is skipped, said in the output); by default the process's
choice (``GIAOBAN_H264_ENCODER``, auto: h264_nvenc where it opens, else libx264) runs.

Nine 640x360 30 fps VP8 clips (moving test patterns, distinct colours) are generated at start
and fed in real time, as the SFU would hand over depacketized frames; each rendition has a few
subscribers (callbacks) receiving the same encoded bytes.

How the CPU split is measured: every libav call of the compositor (decode, swscale, encode)
runs single-threaded and is wrapped by the calling thread's CPU clock
(CLOCK_THREAD_CPUTIME_ID), so libav's work is counted exactly where it happens. The process
CPU clock (all threads) over the same window is the total. "outside libav" = total - libav:
numpy composition and labels, Python glue in the workers, the asyncio clock and delivery, and
the feeder standing in for the SFU (reported separately, so the share is given with and
without it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

from loadtests import loops, procstat
from mcu.bridge.rendition_streams import expand
from mcu.compose import Compositor, Layout, Rendition
from mcu.compose import renditions as renditions_mod
from mcu.compose.testsrc import encode_clip

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RESULTS = os.path.join(ROOT, "loadtests", "results")
NAMES = [
    "Xã Lũng Cú",
    "Phường Quang Trung",
    "Thị trấn Đồng Văn",
    "Xã Mèo Vạc",
    "Xã Sủng Là",
    "Thị trấn Yên Minh",
    "Xã Thanh Thủy",
    "Phường Nguyễn Trãi",
    "Xã Hồ Thầu",
]
COLOURS = [
    (200, 40, 40),
    (40, 180, 60),
    (50, 60, 200),
    (210, 200, 40),
    (190, 60, 190),
    (40, 190, 190),
    (230, 130, 30),
    (120, 120, 120),
    (150, 90, 40),
]
CODECS = ("vp8", "h264")
RENDITIONS = [
    Rendition("720p", 720, 1_200_000),
    Rendition("360p", 360, 400_000),
    Rendition("180p", 180, 150_000),
    Rendition("audio", 0),
]


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds (max 60)")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--sources", type=int, default=9)
    p.add_argument("--layout", default="grid_3x3", choices=[la.value for la in Layout])
    p.add_argument("--src-size", default="640x360")
    p.add_argument("--clip-frames", type=int, default=60)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--subscribers", type=int, default=5, help="subscribers per rendition")
    p.add_argument("--codecs", default="vp8", help="codecs each rendition is encoded in, comma-separated: vp8,h264")
    p.add_argument("--baseline", default="vp8", help="also run these codecs in the same run ('' for none)")
    p.add_argument("--rounds", type=int, default=1, help="baseline then --codecs, this many times")
    p.add_argument(
        "--h264-encoders",
        default="",
        help="run --codecs once per H.264 encoder, e.g. libx264,h264_nvenc (default: the process's choice, "
        "GIAOBAN_H264_ENCODER or auto); one that cannot open is skipped",
    )
    loops.add_option(p)
    a = p.parse_args()
    a.seconds = min(a.seconds, 60.0)
    a.rounds = max(1, min(a.rounds, 5))
    a.codecs = codec_list(p, a.codecs)
    a.baseline = codec_list(p, a.baseline) if a.baseline else []
    a.h264_encoders = [e.strip() for e in a.h264_encoders.split(",") if e.strip()]
    if any(e not in renditions_mod.H264_ENCODER_CHOICES for e in a.h264_encoders):
        p.error(f"--h264-encoders: some of {', '.join(renditions_mod.H264_ENCODER_CHOICES)}")
    return a


def codec_list(p: argparse.ArgumentParser, text: str) -> list[str]:
    codecs = [c.strip().lower() for c in text.split(",") if c.strip()]
    if not codecs or any(c not in CODECS for c in codecs) or len(set(codecs)) != len(codecs):
        p.error(f"codecs: some of {', '.join(CODECS)}, comma-separated, not {text!r}")
    return codecs


def renditions_in(codecs: list[str]) -> list[Rendition]:
    """The ladder in each codec, as the MCU pipeline asks the compositor for it (VP8 keeps the
    ladder's names, others carry the codec: ``h264:720p``); the audio rendition once."""
    return expand(RENDITIONS, [c.upper() for c in codecs])


async def feeder(comp: Compositor, clips: list[list[tuple[bytes, bool]]], fps: int, cpu: list[float]) -> None:
    loop = asyncio.get_running_loop()
    t = loop.time()
    i = 0
    while True:
        c0 = time.thread_time()
        for s, clip in enumerate(clips):
            payload, key = clip[i % len(clip)]
            comp.push(f"s{s}", "vp8", payload, key, i)
        cpu[0] += time.thread_time() - c0
        i += 1
        t += 1 / fps
        await asyncio.sleep(max(0.0, t - loop.time()))


def thread_cpu() -> dict[str, float]:
    """CPU seconds per thread kind: the compositor's pool threads are the ``workers``."""
    out: dict[str, float] = {}
    for name, seconds in procstat.thread_cpu().items():
        key = "workers" if name.startswith("compose") else name
        out[key] = out.get(key, 0.0) + seconds
    return out


def snapshot(comp: Compositor) -> dict:
    st = comp.stats
    return {
        "wall": time.perf_counter(),
        "cpu": time.process_time(),
        "threads": thread_cpu(),
        "meter": comp.meter.snapshot()["cpu_s"],
        "detail": comp.meter.snapshot()["detail_s"],
        "composites": st.composites,
        "dropped": st.ticks_dropped,
        "keyframes": dict(st.keyframes_out),
        "frames": dict(st.frames_out),
        "bytes": dict(st.bytes_out),
        "lag_sum": st.lag_sum,
        "lag_count": st.lag_count,
    }


async def run(a: argparse.Namespace) -> list[dict]:
    """Every configuration in turn (baseline first), on the same clips."""
    w, h = (int(v) for v in a.src_size.split("x"))
    t0 = time.perf_counter()
    clips = [encode_clip(COLOURS[i % 9], w, h, a.clip_frames) for i in range(a.sources)]
    gen_s = time.perf_counter() - t0
    encoders = a.h264_encoders if "h264" in a.codecs and a.h264_encoders else [None]
    configs: list[tuple[list[str], str | None]] = [(a.codecs, e) for e in encoders]
    if a.baseline and a.baseline != a.codecs:
        configs.insert(0, (a.baseline, None))
    results: list[dict] = []
    for rnd in range(a.rounds):
        for codecs, encoder in configs:
            try:
                r = await run_once(a, clips, codecs, encoder)
            except ValueError as e:  # a forced h264_nvenc without a GPU: the others still run
                print(f"round {rnd + 1}, {'+'.join(codecs)} with {encoder}: skipped ({e})\n", flush=True)
                continue
            r["round"], r["config"]["clip_generation_s"] = rnd + 1, round(gen_s, 2)
            print(table(r) + "\n", flush=True)
            results.append(r)
    return results


def use_h264_encoder(encoder: str | None) -> str | None:
    """Make ``encoder`` the process's H.264 encoder (mcu.compose.renditions: chosen once per
    process from GIAOBAN_H264_ENCODER; forgotten here so the next compositor chooses again)."""
    if encoder is not None:
        os.environ[renditions_mod.H264_ENCODER_VARIABLE] = encoder
        renditions_mod.forget_h264_encoder()
    return encoder


def label(cfg: dict) -> str:
    """``vp8+h264/libx264``: the codecs, and the H.264 encoder that ran."""
    return "+".join(cfg["codecs"]) + (f"/{cfg['h264_encoder']}" if cfg.get("h264_encoder") else "")


async def run_once(
    a: argparse.Namespace, clips: list[list[tuple[bytes, bool]]], codecs: list[str], encoder: str | None = None
) -> dict:
    load_start = os.getloadavg()[0]
    renditions = renditions_in(codecs)
    use_h264_encoder(encoder)
    comp = Compositor(Layout(a.layout), 1280, 720, a.fps, renditions, workers=a.workers)
    comp.set_sources([f"s{i}" for i in range(a.sources)], {f"s{i}": NAMES[i % 9] for i in range(a.sources)})
    received = {t.name: 0 for t in renditions if t.height}
    for rendition in received:
        for _ in range(a.subscribers):
            comp.subscribe(rendition, callback=lambda f, t=rendition: received.__setitem__(t, received[t] + 1))
    feed_cpu = [0.0]
    feed = asyncio.create_task(feeder(comp, clips, a.fps, feed_cpu))
    await comp.start()
    await asyncio.sleep(a.warmup)
    s0, f0 = snapshot(comp), feed_cpu[0]
    comp.stats.lag_max = 0.0
    await asyncio.sleep(a.seconds)
    s1, f1 = snapshot(comp), feed_cpu[0]
    lag_max = comp.stats.lag_max
    feed.cancel()
    await asyncio.gather(feed, return_exceptions=True)
    await comp.stop()

    wall, cpu = s1["wall"] - s0["wall"], s1["cpu"] - s0["cpu"]
    meter = {k: s1["meter"][k] - s0["meter"][k] for k in s1["meter"]}
    libav = meter["decode"] + meter["scale"] + meter["encode"]
    composites = s1["composites"] - s0["composites"]
    feed_s = f1 - f0
    rendition_rows = {}
    a_codec = {t.name: t.codec for t in renditions}
    for t in received:
        enc = s1["detail"].get(f"encode.{t}", 0) - s0["detail"].get(f"encode.{t}", 0)
        scl = s1["detail"].get(f"scale.{t}", 0) - s0["detail"].get(f"scale.{t}", 0)
        n = s1["frames"].get(t, 0) - s0["frames"].get(t, 0)
        kf = s1["keyframes"].get(t, 0) - s0["keyframes"].get(t, 0)
        b = s1["bytes"].get(t, 0) - s0["bytes"].get(t, 0)
        rendition_rows[t] = {
            "codec": a_codec[t],
            "fps": n / wall,
            "kbit_s": b * 8 / wall / 1000,
            "keyframes": kf,
            "encode_ms": enc / max(n, 1) * 1e3,
            "scale_ms": scl / max(n, 1) * 1e3,
            "subscribers": a.subscribers,
            "frames_received": received[t],
        }
    per = max(composites, 1)
    return {
        "bench": "compose_bench",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "loop": loops.running(),
        "config": {
            **vars(a),
            "canvas": "1280x720",
            "codecs": codecs,
            "h264_encoder": renditions_mod.h264_encoder() if "h264" in codecs else None,
            "renditions": [(t.name, t.height, t.bitrate, t.codec) for t in renditions],
            "cores_on_machine": os.cpu_count(),
            "load_avg_1m_start": load_start,
            "load_avg_1m": os.getloadavg()[0],
        },
        "wall_s": wall,
        "composites": composites,
        "composite_fps": composites / wall,
        "ticks_dropped": s1["dropped"] - s0["dropped"],
        "renditions": rendition_rows,
        "process_cpu_s": cpu,
        "cores_used": cpu / wall,
        "cpu_ms_per_composite": {
            "total": cpu / per * 1e3,
            "libav": libav / per * 1e3,
            **{k: v / per * 1e3 for k, v in meter.items()},
            "feeder": feed_s / per * 1e3,
            "other": (cpu - libav - meter["compose"] - feed_s) / per * 1e3,
        },
        "thread_cpu_ms_per_composite": {
            k: (v - s0["threads"].get(k, 0.0)) / per * 1e3 for k, v in s1["threads"].items()
        },
        "outside_libav_share": (cpu - libav) / cpu if cpu else 0.0,
        "outside_libav_share_excl_feeder": (cpu - libav - feed_s) / (cpu - feed_s) if cpu else 0.0,
        "python_share_excl_numpy_and_feeder": (cpu - libav - feed_s - meter["compose"]) / (cpu - feed_s)
        if cpu
        else 0.0,
        "loop_lag_ms": {
            "mean": (s1["lag_sum"] - s0["lag_sum"]) / max(1, s1["lag_count"] - s0["lag_count"]) * 1e3,
            "max": lag_max * 1e3,
        },
        "method": __doc__.split("How the CPU split is measured: ")[1].strip(),
    }


def table(r: dict) -> str:
    c = r["cpu_ms_per_composite"]
    cfg = r["config"]
    lines = [
        f"{cfg['layout']} composite 1280x720@{cfg['fps']} in {label(cfg)} from {cfg['sources']} "
        f"VP8 {cfg['src_size']} sources, {r['config']['workers']} workers, {r['loop']} loop, "
        f"{r['wall_s']:.1f} s measured (1-min load avg {cfg['load_avg_1m_start']:.1f} -> "
        f"{cfg['load_avg_1m']:.1f} on {r['config']['cores_on_machine']} cores)",
        f"{'rendition':<10} {'fps':>6} {'kbit/s':>8} {'keyfr':>5} {'scale ms':>9} {'encode ms':>10}",
    ]
    for t, row in r["renditions"].items():
        lines.append(
            f"{t:<10} {row['fps']:>6.1f} {row['kbit_s']:>8.0f} {row['keyframes']:>5} {row['scale_ms']:>9.2f}"
            f" {row['encode_ms']:>10.2f}"
        )
    lines += [
        f"composites/s {r['composite_fps']:.1f}  ticks dropped {r['ticks_dropped']}",
        f"CPU per composite {c['total']:.1f} ms = decode {c['decode']:.1f} + scale {c['scale']:.1f}"
        f" + encode {c['encode']:.1f} (libav {c['libav']:.1f}) + numpy compose/labels "
        f"{c['compose']:.1f} + feeder {c['feeder']:.2f} + other {c['other']:.1f}",
        f"cores used {r['cores_used']:.2f}; by thread (ms/composite): "
        + ", ".join(f"{k} {v:.1f}" for k, v in r["thread_cpu_ms_per_composite"].items()),
        f"outside libav: {r['outside_libav_share']:.1%} of process CPU "
        f"({r['outside_libav_share_excl_feeder']:.1%} without the feeder; pure Python glue "
        f"{r['python_share_excl_numpy_and_feeder']:.1%})",
        f"event-loop lag mean {r['loop_lag_ms']['mean']:.2f} ms, max {r['loop_lag_ms']['max']:.1f} ms",
    ]
    return "\n".join(lines)


def side_by_side(results: list[dict]) -> str:
    """One line per run: the slowest output's fps against the 30 fps target, CPU per composite,
    and the cores that CPU needs at the target rate (``cores@fps``: what an idle machine must
    give; on a shared machine fps falls when the process gets fewer, ``cores``)."""
    lines = [
        f"{'round':>5} {'codecs/encoder':<20} {'outputs':>7} {'comp/s':>6} {'min fps':>7} {'(output)':<10} "
        f"{'CPU ms/comp':>11} {'encode ms':>9} {'scale ms':>8} {'cores':>5} {'cores@fps':>9} {'dropped':>7} {'load':>4}"
    ]
    for r in results:
        rows, c = r["renditions"], r["cpu_ms_per_composite"]
        slowest = min(rows, key=lambda t: rows[t]["fps"])
        lines.append(
            f"{r['round']:>5} {label(r['config']):<20} {len(rows):>7} {r['composite_fps']:>6.1f} "
            f"{rows[slowest]['fps']:>7.1f} {slowest:<10} {c['total']:>11.1f} {c['encode']:>9.1f} "
            f"{c['scale']:>8.1f} {r['cores_used']:>5.2f} {c['total'] * r['config']['fps'] / 1000:>9.2f} {r['ticks_dropped']:>7} {r['config']['load_avg_1m']:>4.1f}"
        )
    return "\n".join(lines)


def main() -> None:
    a = parse()
    r = loops.run(run(a), a.loop)
    if len(r) > 1:
        print(side_by_side(r))
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"compose_bench_{time.strftime('%Y%m%dT%H%M%S')}.json")
    with open(path, "w") as f:
        json.dump(r if len(r) > 1 else r[0], f, indent=2, ensure_ascii=False)
    print(f"written {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    main()

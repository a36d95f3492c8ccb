"""Measures of the province load test from the synthetic endpoints' counters, and the printed table.

Delivered ratio (per output kind / composite rendition), over a window without failures:

* ``received`` = RTP packets a terminal counted on that output's SSRC (RTX not counted);
* ``expected`` = the span of the server's own sequence numbers for that output in the window
  (the server numbers each output's packets itself, so a gap is a packet it sent and the
  terminal never got, or one it skipped because its upstream was lost);
* ``sfu main e2e`` = packets counted on the ``main`` outputs of the SFU receivers / (video
  packets the floor holder sent x those receivers), per floor turn after a settle time.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

from loadtests.signaling_herd import pct
from loadtests.svgplot import line_chart

Snapshot = dict[str, dict[tuple[int, int], tuple[int, int, int, int]]]  # ep -> (gen, ssrc) -> (count, hi, base, bytes)


def snapshot(endpoints: list) -> Snapshot:
    snap: Snapshot = {}
    for ep in endpoints:
        p = ep.peer
        if p is None:
            continue
        snap[ep.id] = {(p.gen, ssrc): (r.count, r.hi, r.base, r.bytes) for ssrc, r in list(p.rx.items())}
    return snap


def row_key(ep, role: str) -> str | None:
    if role == "composite":
        return f"composite {ep.rendition}"
    if role in ("main", "audio", "mix"):
        return {"main": "sfu main", "audio": "sfu audio", "mix": "mix"}[role]
    return None


ROW_ORDER = ["sfu main", "sfu audio", "composite 720p", "composite 360p", "composite 180p", "mix"]


def delivered(endpoints: list, a: Snapshot, b: Snapshot, seconds: float) -> list[dict[str, Any]]:
    """Per row: receivers, received, expected, ratio, kbit/s per receiver; an endpoint whose peer
    connection changed inside the window is left out (counted in ``skipped``)."""
    rows: dict[str, dict[str, Any]] = {}
    for ep in endpoints:
        after = b.get(ep.id)
        before = a.get(ep.id, {})
        if not after:
            continue
        gens = {g for g, _ in after}
        if before and {g for g, _ in before} != gens:
            for key in {row_key(ep, r.role) for r in ep.peer.rx.values()} - {None}:
                rows.setdefault(key, _empty())["skipped"] += 1
            continue
        seen: set[str] = set()
        for (gen, ssrc), (count, hi, base, nbytes) in after.items():
            r = ep.peer.rx.get(ssrc) if ep.peer is not None and ep.peer.gen == gen else None
            key = row_key(ep, r.role) if r is not None else None
            if key is None or hi < 0:
                continue
            c0, h0, _, b0 = before.get((gen, ssrc), (0, -1, base, 0))
            if h0 < 0:  # no packet yet when the window opened: the span starts at the first one
                h0 = base - 1
            row = rows.setdefault(key, _empty())
            row["received"] += count - c0
            row["expected"] += hi - h0
            row["bytes"] += nbytes - b0
            if key not in seen:
                seen.add(key)
                row["receivers"] += 1
    out = []
    for key in ROW_ORDER + sorted(set(rows) - set(ROW_ORDER)):
        if key in rows:
            r = rows[key]
            out.append(
                {
                    "output": key,
                    "receivers": r["receivers"],
                    "received": r["received"],
                    "expected": r["expected"],
                    "ratio": r["received"] / r["expected"] if r["expected"] else None,
                    "kbps_per_receiver": r["bytes"] * 8 / 1000 / seconds / max(1, r["receivers"]),
                    "skipped": r["skipped"],
                }
            )
    return out


def _empty() -> dict[str, Any]:
    return {"receivers": 0, "received": 0, "expected": 0, "bytes": 0, "skipped": 0}


def main_counts(endpoints: list) -> dict[str, tuple[int, int]]:
    """Per endpoint: (peer generation, packets on its main outputs)."""
    out = {}
    for ep in endpoints:
        p = ep.peer
        if p is not None:
            out[ep.id] = (p.gen, sum(r.count for r in list(p.rx.values()) if r.role == "main"))
    return out


def main_e2e(turns: list[dict[str, Any]]) -> dict[str, Any]:
    """turns: {holder, sent, received, receivers} per floor turn -> one ratio."""
    sent = sum(t["sent"] * t["receivers"] for t in turns)
    got = sum(t["received"] for t in turns)
    return {"turns": turns, "expected": sent, "received": got, "ratio": got / sent if sent else None}


STAGES = ("ws_lost", "reset", "ws_open", "welcome", "joined", "offer", "answer", "video")


def stages(endpoints: list, t_kill: float) -> dict[str, dict[str, Any]]:
    """Per path (WebSocket lost / media_reset only): for each stage, the median and max of the
    first time it happened after the kill (s), and how many endpoints got there."""
    paths: dict[str, dict[str, list[float]]] = {}
    for ep in endpoints:
        first: dict[str, float] = {}
        for t, what in ep.events:
            if t >= t_kill and what not in first:
                first[what] = t - t_kill
        path = "ws_lost" if "ws_lost" in first else "media_reset" if "reset" in first else "other"
        for what, dt in first.items():
            paths.setdefault(path, {}).setdefault(what, []).append(dt)
    return {
        path: {
            what: {"n": len(v), "median_s": round(statistics.median(v), 3), "max_s": round(max(v), 3)}
            for what in STAGES
            if (v := got.get(what))
        }
        for path, got in paths.items()
    }


def histogram(values: list[float]) -> dict[int, int]:
    """Whole seconds -> count."""
    out: dict[int, int] = {}
    for v in values:
        out[int(v)] = out.get(int(v), 0) + 1
    return dict(sorted(out.items()))


def summary(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median_s": None, "p95_s": None, "max_s": None}
    return {"median_s": statistics.median(values), "p95_s": pct(values, 95), "max_s": max(values)}


def cpu_table(procs: list, machine: list, t0: float, n: int, out: dict[str, Any]) -> dict[str, Any]:
    """CPU share, ms per endpoint per second (floor window), ms per join (herd), share in the recovery, RSS."""
    a, b = out["floor_window"]
    h0, h1 = out["herd_window"]
    rows = []
    k = out.get("kill")
    rec = (k["t_kill"], k["t_kill"] + (k["recovery"]["max_s"] or 0)) if k else None
    for p in procs:
        cpu = p.cpu_between(t0 + a, t0 + b)
        rcpu = p.cpu_between(t0 + rec[0], t0 + rec[1]) if rec and rec[1] - rec[0] >= 1 else None
        herd = p.cpu_between(t0 + h0, t0 + h1)
        last = p.samples[-1][2] if p.samples else 0
        rows.append(
            {
                "name": p.name,
                "role": p.role,
                "cpu_pct": cpu / (b - a) * 100 if cpu is not None else None,
                "ms_per_endpoint_s": cpu / (b - a) / n * 1000 if cpu is not None else None,
                "herd_ms_per_join": herd / n * 1000 if herd is not None else None,
                "recovery_cpu_pct": rcpu / (rec[1] - rec[0]) * 100 if rcpu is not None else None,
                "rss_mib": last / 2**20,
                "rss_max_mib": p.rss_max() / 2**20,
            }
        )
    inside = [m for m in machine if t0 + a - 0.01 <= m[0] <= t0 + b + 0.01]
    busy = (
        (inside[-1][1] - inside[0][1]) / (inside[-1][2] - inside[0][2]) * (os.cpu_count() or 1) * 100
        if len(inside) > 1 and inside[-1][2] > inside[0][2]
        else None
    )
    ours = sum(r["cpu_pct"] or 0 for r in rows)
    return {
        "window": f"floor rotation, {b - a:.1f} s, {n} endpoints",
        "processes": rows,
        "machine_busy_pct": busy,
        "other_processes_pct": busy - ours if busy is not None else None,
    }


def write_svg(timeline: list[dict], kills: list, n: int, out: dict[str, Any], path: Path) -> None:
    bands = [
        (*out[key], label) for key, label in (("herd_window", "herd"), ("floor_window", "floor rotation")) if key in out
    ]
    svg = line_chart(
        f"Hà Giang briefing: {n} endpoints, {out['topology']['layout']} layout",
        x_label="seconds since start",
        y_label="endpoints",
        series={
            "in meeting": [(r["t"], r["joined"]) for r in timeline],
            "media flowing": [(r["t"], r["media"]) for r in timeline],
            **(
                {"edge: media flowing": [(r["t"], r["edge_media"]) for r in timeline if "edge_media" in r]}
                if any("edge_media" in r for r in timeline)
                else {}
            ),
        },
        marks=kills,
        bands=bands,
        y_max=n,
    )
    path.write_text(svg, encoding="utf-8")


def fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def spread(d: dict[str, Any]) -> str:
    """'median X s, p95 Y s, max Z s' of a dict with median_s, p95_s, max_s."""
    return f"median {fmt(d['median_s'], '.2f')} s, p95 {fmt(d['p95_s'], '.2f')} s, max {fmt(d['max_s'], '.2f')} s"


def print_report(out: dict[str, Any]) -> None:
    topo = out["topology"]
    print(
        f"\n== Hà Giang province meeting: {out['endpoints']['total']} endpoints, layout {topo['layout']} "
        f"({', '.join(p['name'] + ':' + p['role'] for p in topo['processes'])}), "
        f"fibre mode {out['meeting']['fibre_mode']}, run {out['runtime_s']:.0f} s, "
        f"endpoints on {out.get('loop', 'asyncio')}, servers on {out.get('server_loop', 'uvloop')}"
    )
    j = out["join"]
    print(
        f"join: {j['joined']}/{j['endpoints']} joined, {j['media']}/{j['endpoints']} with media; "
        f"join {spread(j['join'])}; first video {spread(j['media_time'])}"
    )
    if j.get("server_offer_before_answer"):
        print(
            f"note: {j['server_offer_before_answer']} server offers arrived before the server's answer to the "
            f"terminal's own offer (answered after it)"
        )
    for name, d in out["delivered"].items():
        print(f"\ndelivered ({name}, {d['seconds']:.1f} s window; ratio = received / server sequence span)")
        head = (
            f"{'output':<16} {'recv':>5} {'received':>10} {'expected':>10} {'deliv%':>8} {'kbit/s':>8} {'skipped':>8}"
        )
        print(head + "\n" + "-" * len(head))
        for r in d["rows"]:
            print(
                f"{r['output']:<16} {r['receivers']:>5} {r['received']:>10} {r['expected']:>10} "
                f"{fmt(r['ratio'] and r['ratio'] * 100, '.2f'):>8} {r['kbps_per_receiver']:>8.0f} {r['skipped']:>8}"
            )
        e2e = d.get("sfu_main_e2e")
        if e2e:
            print(
                f"{'sfu main e2e':<16} {'':>5} {e2e['received']:>10} {e2e['expected']:>10} "
                f"{fmt(e2e['ratio'] and e2e['ratio'] * 100, '.2f'):>8}   (floor holder's sent packets x SFU receivers)"
            )
    print(f"\nserver CPU (window: {out['cpu']['window']}; ms = CPU ms per endpoint per second)")
    c = out["cpu"]
    if c.get("machine_busy_pct") is not None:
        print(
            f"machine busy {c['machine_busy_pct']:.0f}% of {out['cores'] * 100}% in the window; processes outside "
            f"this test: {c['other_processes_pct']:.0f}% (other jobs on the machine distort the run when high)"
        )
    print(
        "herd ms/join = CPU in the herd / endpoints; recover% = CPU share from the kill until the last endpoint was back"
    )
    head = (
        f"{'process':<10} {'role':<10} {'herd ms/join':>12} {'cpu%':>6} {'ms/ep/s':>8} {'recover%':>9} "
        f"{'RSS MiB':>8} {'max RSS':>8}"
    )
    print(head + "\n" + "-" * len(head))
    for p in out["cpu"]["processes"]:
        print(
            f"{p['name']:<10} {p['role']:<10} {fmt(p['herd_ms_per_join'], '.1f'):>12} {fmt(p['cpu_pct'], '.1f'):>6} "
            f"{fmt(p['ms_per_endpoint_s'], '.2f'):>8} {fmt(p.get('recovery_cpu_pct'), '.0f'):>9} "
            f"{fmt(p['rss_mib'], '.0f'):>8} {fmt(p['rss_max_mib'], '.0f'):>8}"
        )
    k = out.get("kill")
    if k:
        print(f"\nkill phase: kill -9 {', '.join(k['killed'])} at t={k['t_kill']:.1f} s")
        for line in k["lost"]:
            print(f"  lost: {line}")
        r = k["recovery"]
        print(
            f"  endpoints affected {k['affected']}, back {k['back']}, back within {k['target_s']:.0f} s: "
            f"{k['back_within_target']}; not back: {len(k['not_back'])} {k['not_back'][:8]}"
        )
        print(
            f"  time back in the meeting with media: {spread(r)}; WebSocket losses {k['ws_lost']}, media_reset {k['media_reset']}"
        )
        ev = k.get("events_after_kill", {})
        for name in ("ws_lost", "media_reset", "rejoined"):
            if ev.get(name):
                print(f"  {name:<12} per second after the kill: " + ", ".join(f"{s}s:{n}" for s, n in ev[name].items()))
        for path, got in k.get("stages", {}).items():
            print(
                f"  path {path:<11} (median/max s after the kill): "
                + ", ".join(f"{w} {g['median_s']:.2f}/{g['max_s']:.2f} (n={g['n']})" for w, g in got.items())
            )
        if ev.get("endpoints_with_2_or_more_resets"):
            print(f"  endpoints that got media_reset twice or more: {ev['endpoints_with_2_or_more_resets']}")
        if k.get("pin_after"):
            print(f"  meeting pinned before: {k.get('pin_before')}, after: {k['pin_after']}")

"""The cascade part of the province load test (``--edge DISTRICT_IDS``): one edge media node
(``edge-1``, ``--media-serves`` those districts) pulls the meeting from its origin over one
cascade link and forwards it to the districts' endpoints.

Measures, into ``out["cascade"]`` and per group (``edge`` = endpoints under the districts,
``origin`` = the others):

* ``peers``: ``giaoban_media_peers`` of each media node's ``/metrics`` in the floor window, and
  the ``cascade_links`` of ``GET /api/v1/meetings/{id}/live`` (the origin's peer per edge);
* ``one_copy``: packets and bytes per second the edge received on its cascade link (counted in
  the edge process by ``province_tap``, RTP after SRTP) vs the sum of what the edge endpoints
  received (counted at the endpoints, all outputs, SRTP), over the floor rotation; and the up
  direction (what the origin received from the edge, and the link stats' inbound kbit/s);
* delivered ratio per output for each group (``province_report.delivered`` on the group);
* CPU ms per served endpoint per second for each media process (its own peers, from /metrics);
* kill phase: per group, how many were affected, got ``media_reset`` / lost the WebSocket, the
  recovery time (median / p95 / max) and the stage times.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

from loadtests import province_report as rep
from loadtests.province_cluster import Cluster, media_peers
from mcu.cascade.lines import COMPOSITE_RENDITION

DEFAULT_EDGE = "hg-hoang-su-phi,hg-vi-xuyen,hg-bac-quang"  # the three largest districts (75 endpoints)


def edge_members(directory: list[dict], districts: list[str]) -> set[str]:
    """Endpoint ids under the given ids (the ids themselves included), by the parent chain."""
    parent = {e["id"]: e.get("parent") for e in directory}
    unknown = [d for d in districts if d not in parent]
    if unknown:
        raise SystemExit(f"--edge: not in the directory: {', '.join(unknown)}")
    want = set(districts)
    out = set()
    for e in directory:
        i, seen = e["id"], 0
        while i is not None and seen < 20:
            if i in want:
                out.add(e["id"])
                break
            i, seen = parent.get(i), seen + 1
    return out


def read_tap(cluster: Cluster, name: str) -> dict[str, Any] | None:
    path = Path(cluster.workdir) / name / "tap.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def taps(cluster: Cluster) -> dict[str, Any]:
    return {p.name: read_tap(cluster, p.name) for p in cluster.servers() if p.role in ("media", "edge") and p.alive}


def _rate(a: dict | None, b: dict | None) -> dict[str, dict[str, float]]:
    """Per cascade link name: packets/s and kbit/s between two tap readings."""
    if not a or not b or b["t"] <= a["t"]:
        return {}
    dt = b["t"] - a["t"]
    out = {}
    for name, (pk, by) in b["links"].items():
        pk0, by0 = a["links"].get(name, (0, 0))
        out[name] = {"packets_s": (pk - pk0) / dt, "kbps": (by - by0) * 8 / 1000 / dt, "seconds": dt}
    return out


def received(eps: list, a: rep.Snapshot, b: rep.Snapshot, seconds: float) -> dict[str, float]:
    """What a group of endpoints received (all outputs, same peer connection in the window)."""
    pk = by = 0
    n = 0
    for ep in eps:
        after, before = b.get(ep.id), a.get(ep.id, {})
        if not after:
            continue
        n += 1
        for key, (count, _hi, _base, nbytes) in after.items():
            c0, _h, _b, b0 = before.get(key, (0, -1, 0, 0))
            pk += count - c0
            by += nbytes - b0
    return {"endpoints": n, "packets_s": pk / seconds, "kbps": by * 8 / 1000 / seconds}


async def live(http: aiohttp.ClientSession, url: str, op: str, meeting_id: str) -> dict[str, Any] | None:
    try:
        async with http.get(
            f"{url}/api/v1/meetings/{meeting_id}/live",
            headers={"Authorization": f"Bearer {op}"},
            timeout=aiohttp.ClientTimeout(total=5),
        ) as r:
            return await r.json() if r.status == 200 else None
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        return None


async def peers_now(cluster: Cluster, http: aiohttp.ClientSession, op: str, meeting_id: str) -> dict[str, Any]:
    """Media peers per media node (/metrics) and the meeting's cascade links (/live)."""
    nodes = [p for p in cluster.servers() if p.role in ("media", "edge") and p.alive]
    counts = await asyncio.gather(*(media_peers(http, p.url) for p in nodes))
    sig = next((p for p in cluster.servers() if p.role == "signaling" and p.alive), None)
    body = await live(http, sig.url, op, meeting_id) if sig else None
    links = (body or {}).get("cascade_links") or {}
    return {
        "media_peers": {p.name: c for p, c in zip(nodes, counts)},
        "cascade_links": {
            k: {f: v.get(f) for f in ("connected", "kbps", "bitrate_kbps", "loss_in_pct", "loss_out_pct", "quality")}
            for k, v in links.items()
        },
    }


def split(eps: list, members: set[str]) -> dict[str, list]:
    return {"edge": [ep for ep in eps if ep.id in members], "origin": [ep for ep in eps if ep.id not in members]}


async def floor_report(
    cluster: Cluster,
    http: aiohttp.ClientSession,
    op: str,
    meeting_id: str,
    eps: list,
    members: set[str],
    pin: str | None,
    snap_a,
    snap_b,
    seconds: float,
    tap_a: dict,
    tap_b: dict,
    out: dict[str, Any],
) -> None:
    groups = split(eps, members)
    peers = await peers_now(cluster, http, op, meeting_id)
    edge_in = _rate(tap_a.get("edge-1"), tap_b.get("edge-1"))
    origin_in = _rate(tap_a.get(pin or ""), tap_b.get(pin or ""))
    down = next(iter(edge_in.values()), None)  # the edge has one link per meeting: one meeting here
    fwd = received(groups["edge"], snap_a, snap_b, seconds)
    up = next(iter(origin_in.values()), None)
    out["cascade"] = {
        "edge": cluster.edge,
        "origin": pin,
        "composite_rendition": COMPOSITE_RENDITION,
        "endpoints": {g: len(v) for g, v in groups.items()},
        "peers": peers,
        "one_copy": {
            "down_link": down,
            "edge_endpoints_received": fwd,
            "kbps_ratio": fwd["kbps"] / down["kbps"] if down and down["kbps"] else None,
            "packets_ratio": fwd["packets_s"] / down["packets_s"] if down and down["packets_s"] else None,
            "up_link": up,
            "down_links_by_name": edge_in,
            "up_links_by_name": origin_in,
        },
        "delivered": {"floor rotation": {g: rep.delivered(v, snap_a, snap_b, seconds) for g, v in groups.items()}},
    }


async def after_kill(
    cluster: Cluster,
    http: aiohttp.ClientSession,
    op: str,
    meeting_id: str,
    eps: list,
    members: set[str],
    snap_a,
    snap_b,
    seconds: float,
    t_kill_abs: float,
    out: dict[str, Any],
) -> None:
    c = out.get("cascade")
    k = out.get("kill")
    if c is None or k is None:
        return
    c["peers_after_kill"] = await peers_now(cluster, http, op, meeting_id)
    groups = split(eps, members)
    c["delivered"]["after kill"] = {g: rep.delivered(v, snap_a, snap_b, seconds) for g, v in groups.items()}
    per = k["per_endpoint_s"]
    rows = {}
    for g, v in groups.items():
        affected = [ep for ep in v if per.get(ep.id) != 0.0]
        back = [per[ep.id] for ep in affected if per.get(ep.id) is not None]
        reasons: dict[str, int] = {}
        for ep in v:
            for t, why in zip(ep.resets, ep.reset_reasons):
                if t >= t_kill_abs:
                    reasons[why] = reasons.get(why, 0) + 1
        rows[g] = {
            "endpoints": len(v),
            "media_reset_reasons": reasons,
            "affected": len(affected),
            "back": len(back),
            "back_within_target": sum(1 for t in back if t <= k["target_s"]),
            "not_back": [ep.id for ep in affected if per.get(ep.id) is None],
            "media_reset": sum(1 for ep in v if any(t >= t_kill_abs for t in ep.resets)),
            "ws_lost": sum(1 for ep in v if any(t >= t_kill_abs for t in ep.ws_losses)),
            "recovery": rep.summary(back),
            "stages": rep.stages(affected, t_kill_abs),
        }
    c["kill"] = rows


def cpu(out: dict[str, Any]) -> None:
    """CPU ms per served endpoint per second (its own media peers; the origin's cascade peer counted)."""
    c = out.get("cascade")
    if c is None:
        return
    served = c["peers"]["media_peers"]
    c["cpu"] = {
        p["name"]: {
            "peers": served.get(p["name"]),
            "cpu_pct": p["cpu_pct"],
            "ms_per_served_endpoint_s": (p["cpu_pct"] * 10 / served[p["name"]])
            if p["cpu_pct"] is not None and served.get(p["name"])
            else None,
        }
        for p in out["cpu"]["processes"]
        if p["name"] in served
    }


def keep_logs(cluster: Cluster, results: Path, stamp: str) -> dict[str, str]:
    """Copy each server's stderr log to results/province_load_<stamp>_logs/<name>.log."""
    folder = results / f"province_load_{stamp}_logs"
    kept = {}
    for p in cluster.servers():
        src = Path(cluster.workdir) / p.name / "server.log"
        if src.exists() and p.role != "redis":
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{p.name}.log").write_bytes(src.read_bytes())
            kept[p.name] = str(folder / f"{p.name}.log")
    return kept


def print_report(out: dict[str, Any]) -> None:
    c = out.get("cascade")
    if c is None:
        return
    n = c["endpoints"]
    print(
        f"\ncascade (on the edge every composite is the link's {c.get('composite_rendition', '360p')} rendition, "
        "whatever the row's start rendition)"
    )
    print(
        f"cascade: edge-1 serves {', '.join(c['edge'])} ({n['edge']} endpoints); origin {c['origin']} "
        f"({n['origin']} endpoints)"
    )
    mp = c["peers"]["media_peers"]
    print("  media peers (/metrics giaoban_media_peers): " + ", ".join(f"{k} {v}" for k, v in mp.items()))
    links = c["peers"]["cascade_links"]
    on_origin = mp.get(c["origin"] or "")
    if on_origin is not None:
        extra = on_origin - n["origin"]
        print(
            f"  origin {c['origin']}: {on_origin} peers = {n['origin']} endpoints + {extra} "
            f"({'one cascade peer for the one edge: OK' if extra == 1 and len(links) == 1 else 'NOT one cascade peer per edge'}); "
            f"edge-1: {mp.get('edge-1')} peers for {n['edge']} endpoints"
        )
    print(
        f"  cascade links at the origin (/live cascade_links): {len(links)} "
        + ", ".join(
            f"{k} connected={v['connected']} in {v['bitrate_kbps']} kbit/s {v['kbps']} loss out {v['loss_out_pct']}%"
            for k, v in links.items()
        )
    )
    oc = c["one_copy"]
    d, f = oc["down_link"], oc["edge_endpoints_received"]
    if d:
        print(
            f"  one copy: origin->edge link {d['kbps'] / 1000:.2f} Mbit/s, {d['packets_s']:.0f} pkt/s carries what "
            f"{f['endpoints']} edge endpoints receive as {f['kbps'] / 1000:.2f} Mbit/s, {f['packets_s']:.0f} pkt/s "
            f"(x{rep.fmt(oc['kbps_ratio'], '.1f')} bytes, x{rep.fmt(oc['packets_ratio'], '.1f')} packets)"
        )
    else:
        print(
            "  one copy: NO cascade link traffic counted on edge-1 (tap: " + json.dumps(oc["down_links_by_name"]) + ")"
        )
    if oc["up_link"]:
        u = oc["up_link"]
        print(
            f"  up: edge->origin {u['kbps'] / 1000:.2f} Mbit/s, {u['packets_s']:.0f} pkt/s (the edge's floor holder "
            f"and loud mics)"
        )
    for name, groups in c["delivered"].items():
        print(f"  delivered ({name}) per group: output / receivers / deliv% / kbit/s per receiver")
        for g, rows in groups.items():
            print(
                f"    {g:<7} "
                + "; ".join(
                    f"{r['output']} {r['receivers']} {rep.fmt(r['ratio'] and r['ratio'] * 100, '.2f')}%"
                    f" {r['kbps_per_receiver']:.0f}"
                    for r in rows
                )
            )
    for name, row in (c.get("cpu") or {}).items():
        print(
            f"  cpu {name:<8} {rep.fmt(row['cpu_pct'], '.1f')}% for {row['peers']} peers: "
            f"{rep.fmt(row['ms_per_served_endpoint_s'], '.2f')} ms per served endpoint per second"
        )
    after = c.get("peers_after_kill")
    if after:
        print(
            "  after the kill: media peers "
            + ", ".join(f"{k} {v}" for k, v in after["media_peers"].items())
            + f"; cascade links at the new origin {len(after['cascade_links'])} "
            + ", ".join(
                f"{k} connected={v['connected']} in {v['bitrate_kbps']} kbit/s"
                for k, v in after["cascade_links"].items()
            )
        )
    for g, r in (c.get("kill") or {}).items():
        rec = r["recovery"]
        print(
            f"  kill, {g:<6}: {r['endpoints']} endpoints, affected {r['affected']}, media_reset {r['media_reset']}, "
            f"ws_lost {r['ws_lost']}, back {r['back']} (within target {r['back_within_target']}); back "
            f"{rep.spread(rec)}; not back {r['not_back'][:6]}"
        )
        if r.get("media_reset_reasons"):
            print(
                "      media_reset reasons: "
                + ", ".join(f"{why!r} x{n}" for why, n in r["media_reset_reasons"].items())
            )
        for path, got in r["stages"].items():
            print(
                f"      path {path:<11} "
                + ", ".join(f"{w} {s['median_s']:.2f}/{s['max_s']:.2f} (n={s['n']})" for w, s in got.items())
            )

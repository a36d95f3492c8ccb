"""Province-wide briefing under load: Hà Giang's 210 non-central endpoints join one meeting within a
few seconds (the herd of auto-joining room terminals), the chair (hg-ubnd) speaks at 720p, the
floor goes to three communes in turn, then one signaling node and the meeting's media node are
killed with kill -9 and every endpoint must come back by itself.

    .venv/bin/python -m loadtests.province_load [--signaling 2 --media 2] [--cluster auto|on|off] [--edge [IDS]]
        [--loop uvloop|asyncio]

Servers: a real Redis (tests/support/redis_server.py) and `giaoban serve` processes on 127.0.0.1
(``province_cluster``). Endpoints: light synthetic terminals (``province_endpoint``) in this
process. Fibre endpoints are on the SFU (``--fibre-mode both``: plus the 720p composite and the
mix); thin and mobile communes get the composite (360p / 180p) and the mix. Reports join
success and time, delivered ratio per output and rendition (``province_report``), server CPU per
endpoint per second and RSS per process, the kill phase; prints a live line each second, a
table at the end, and writes JSON + SVG to loadtests/results/. ``--edge`` adds a cascade edge
media node for some districts (``province_cascade``). ``--loop`` is the loop of this process (the
endpoints); the servers are ``giaoban serve``, which always runs uvloop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from loadtests import loops
from loadtests import province_cascade as casc
from loadtests import province_report as rep
from loadtests.province_cluster import PASSWORD, Cluster, Proc, cluster_view, pinned_node
from loadtests.province_endpoint import RENDITION_BY_LINK, Endpoint
from loadtests.sfu_fanout import encoded_frames
from loadtests.signaling_herd import VN, post, provision
from loadtests.procstat import machine_cpu
from mcu.peer.ice import pin_host_addresses

RESULTS = Path(__file__).resolve().parent / "results"
CHAIR = "hg-ubnd"
FLOOR_DISTRICTS = ("hg-meo-vac", "hg-dong-van", "hg-hoang-su-phi")  # one thin commune of each speaks


class Run:
    """State shared by the phases, the ticker and the report."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.t0 = time.monotonic()
        self.phase = "start"
        self.endpoints: list[Endpoint] = []
        self.edge_members: set[str] = set()  # endpoints under --edge districts
        self.procs: list[Proc] = []
        self.timeline: list[dict[str, Any]] = []
        self.marks: dict[str, float] = {}
        self.kills: list[tuple[float, str]] = []
        self.stop_ticker = False
        self.machine: list[tuple[float, float, float]] = []  # (t, busy s, total s) of the whole machine
        self.frames = encoded_frames()  # pre-encoded 720p VP8 for the chair and the speakers

    def rel(self, t: float | None = None) -> float:
        return (time.monotonic() if t is None else t) - self.t0

    async def ticker(self) -> None:
        """Four times a second the timeline (in meeting, media flowing); once a second CPU/RSS
        samples, the progress line and the REMB of thin/mobile terminals."""
        tty = sys.stdout.isatty()
        last: dict[str, tuple[float, float]] = {}
        end = self.t0 + self.args.max_seconds
        tick = 0
        while not self.stop_ticker and time.monotonic() < end:
            now = time.monotonic()
            tick += 1
            joined = sum(ep.joined for ep in self.endpoints)
            media = sum(ep.media_ok(now) for ep in self.endpoints)
            if self.phase != "stop":
                self.timeline.append(
                    {"t": round(self.rel(now), 2), "phase": self.phase, "joined": joined, "media": media}
                )
                if self.edge_members:
                    self.timeline[-1]["edge_media"] = sum(
                        ep.media_ok(now) for ep in self.endpoints if ep.id in self.edge_members
                    )
            if tick % 4 != 1:
                await asyncio.sleep(max(0.0, 0.25 - (time.monotonic() - now)))
                continue
            cpu = []
            self.machine.append((now, *machine_cpu()))
            for p in self.procs:
                p.sample(now)
                if p.samples and p.samples[-1][0] == now:
                    if p.name in last:
                        t_prev, c_prev = last[p.name]
                        cpu.append(f"{p.name} {(p.samples[-1][1] - c_prev) / (now - t_prev) * 100:3.0f}%")
                    last[p.name] = (now, p.samples[-1][1])
                elif not p.alive:
                    cpu.append(f"{p.name} dead")
            print(
                f"t={self.rel(now):5.1f}s {self.phase:<18} joined {joined:>3}/{len(self.endpoints)} "
                f"media-ok {media:>3}  cpu: {', '.join(cpu)}",
                end="\r" if tty else "\n",
                flush=True,
            )
            await asyncio.gather(*(ep.send_remb() for ep in self.endpoints), return_exceptions=True)
            await asyncio.sleep(max(0.0, 0.25 - (time.monotonic() - now)))

    def set_phase(self, phase: str) -> None:
        if sys.stdout.isatty():
            print()
        self.phase = phase
        self.marks[phase] = self.rel()

    async def wait_until(self, cond, timeout: float) -> bool:
        deadline = min(time.monotonic() + timeout, self.t0 + self.args.max_seconds - 5)
        while time.monotonic() < deadline:
            if cond():
                return True
            await asyncio.sleep(0.1)
        return cond()


async def start_cluster(args, workdir: Path, http: aiohttp.ClientSession) -> tuple[Cluster, str, dict | None]:
    """Start the processes; with --cluster auto, fall back to the local layout when the servers
    do not answer GET /api/v1/cluster as a cluster. Returns the cluster, an operator token, the view."""
    for clustered in [True, False] if args.cluster == "auto" else [args.cluster == "on"]:
        cluster = Cluster(
            workdir / ("cluster" if clustered else "local"), args.signaling, args.media, clustered, edge=args.edge
        )
        try:
            cluster.start()
            await cluster.wait_healthy(http)
            url = cluster.signaling_urls()[0]
            op = (await post(http, url, "/api/v1/auth/login", username="admin", password=PASSWORD))["token"]
            view = await cluster_view(http, url, op)
            if clustered and not (view or {}).get("clustered"):
                if args.cluster == "auto" and not args.edge:
                    print(
                        "servers are not clustered (no GET /api/v1/cluster): falling back to the local layout",
                        flush=True,
                    )
                    cluster.close()
                    continue
                raise SystemExit("--cluster on, but the servers do not report a cluster")
            return cluster, op, view
        except BaseException:
            cluster.close()
            raise
    raise SystemExit("no layout could start")


def choose(directory: list[dict], limit: int | None) -> tuple[list[dict], list[str]]:
    """The 210 non-central endpoints (or the first ``limit``, keeping the chair and the speakers)
    and the three communes that get the floor."""
    eps = [e for e in directory if e["tier"] != "central"]
    floor = []
    for district in FLOOR_DISTRICTS:
        thin = [e["id"] for e in eps if e["parent"] == district and e["link"] == "thin"]
        if thin:
            floor.append(thin[0])
    if limit:
        keep = {CHAIR, *floor}
        eps = [e for e in eps if e["id"] in keep] + [e for e in eps if e["id"] not in keep][: max(0, limit - len(keep))]
    return eps, floor


async def drive(
    run: Run,
    cluster: Cluster,
    http: aiohttp.ClientSession,
    op: str,
    meeting_id: str,
    floor: list[str],
    out: dict[str, Any],
) -> None:
    args, eps = run.args, run.endpoints
    by_id = {ep.id: ep for ep in eps}
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    deadline = run.t0 + args.max_seconds
    tasks = []
    try:
        run.set_phase("herd")
        t_herd = time.monotonic()

        async def start(ep: Endpoint, delay: float) -> None:
            await asyncio.sleep(delay)
            await ep.run(session, time.monotonic(), deadline)

        for ep in eps:
            tasks.append(asyncio.create_task(start(ep, 0 if ep.chair else random.uniform(0, args.spread))))
        all_in = await run.wait_until(lambda: all(ep.media_ok(time.monotonic()) for ep in eps), args.join_timeout)
        t_joined = time.monotonic()
        out["herd_window"] = (run.rel(t_herd), run.rel(t_joined))
        out["herd_no_media"] = {ep.id: ep.diag() for ep in eps if not ep.media_ok(t_joined)}
        print(
            f"\nherd: {'all' if all_in else 'NOT all'} endpoints in with media after {t_joined - t_herd:.1f} s",
            flush=True,
        )
        run.set_phase("settle")
        await asyncio.sleep(args.settle)

        # floor rotation: the measurement window
        run.set_phase("floor")
        chair = by_id[CHAIR]
        sfu_receivers = [ep for ep in eps if ep.mode != "mcu"]
        snap_a, t_a = rep.snapshot(eps), time.monotonic()
        tap_a = casc.taps(cluster) if args.edge else None
        turns = []
        for i, holder in enumerate(floor):
            run.phase = f"floor {i + 1}/{len(floor)} {holder[3:]}"[:18]
            await chair.grant_floor(holder)
            await asyncio.sleep(args.floor_settle)
            h = by_id[holder]
            m0, s0 = rep.main_counts(sfu_receivers), h.sent_video_total
            await asyncio.sleep(max(0.5, args.floor_seconds - args.floor_settle))
            m1, s1 = rep.main_counts(sfu_receivers), h.sent_video_total
            same = [e for e in m1 if e != holder and e in m0 and m0[e][0] == m1[e][0]]
            turns.append(
                {
                    "holder": holder,
                    "sent": s1 - s0,
                    "receivers": len(same),
                    "received": sum(m1[e][1] - m0[e][1] for e in same),
                }
            )
        snap_b, t_b = rep.snapshot(eps), time.monotonic()
        tap_b = casc.taps(cluster) if args.edge else None
        out["floor_window"] = (run.rel(t_a), run.rel(t_b))
        out["delivered"] = {
            "floor rotation": {
                "seconds": t_b - t_a,
                "rows": rep.delivered(eps, snap_a, snap_b, t_b - t_a),
                "sfu_main_e2e": rep.main_e2e(turns),
            }
        }
        if args.edge:
            pin = pinned_node(await cluster_view(http, cluster.signaling_urls()[-1], op), meeting_id)
            await casc.floor_report(
                cluster, http, op, meeting_id, eps, run.edge_members, pin, snap_a, snap_b, t_b - t_a, tap_a, tap_b, out
            )
        if args.kill:
            await kill_phase(run, cluster, http, op, meeting_id, out)
    finally:
        run.set_phase("stop")
        await asyncio.gather(*(asyncio.wait_for(ep.stop(), 10) for ep in eps), return_exceptions=True)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await session.close()


async def kill_phase(run: Run, cluster: Cluster, http, op: str, meeting_id: str, out: dict[str, Any]) -> None:
    args, eps = run.args, run.endpoints
    sig = [p for p in cluster.servers() if p.role in ("signaling", "both")]
    view = await cluster_view(http, sig[-1].url, op)
    pin_before = pinned_node(view, meeting_id)  # None before the cluster features: media is on sig[0]
    media = cluster.by_name(pin_before) if pin_before else None
    peers = ((view or {}).get("media_nodes") or {}).get(pin_before or "", {}).get("peers")
    # one signaling node and the meeting's media node; a node that is both counts for both
    target = media if media is not None and media.role == "both" else sig[0]
    lost = []
    if media is not None and len([p for p in cluster.servers() if p.role in ("media", "both")]) < 2:
        lost.append(f"(media node {media.name} spared: no other media node to fail over to; use --media 2)")
        media = None
    victims = [target] + ([media] if media is not None and media is not target else [])
    on_sig = [ep for ep in eps if ep.url() == target.url and ep.joined]
    lost.insert(
        0,
        f"signaling node {target.name}: WebSocket sessions of {len(on_sig)} endpoints"
        + (f" and its media node, the meeting's pinned one ({peers} media peers)" if media is target else "")
        + (" and its in-process media node with the meeting's media" if pin_before is None else ""),
    )
    if media is not None and media is not target:
        lost.append(f"media node {media.name}: the meeting's pinned node, {peers} media peers")
    run.set_phase("kill")
    t_kill = time.monotonic()
    marks = {ep.id: (ep.gens, len(ep.ws_losses), len(ep.resets)) for ep in eps}
    for p in victims:
        cluster.kill(p, t_kill)
        run.kills.append((run.rel(t_kill), f"kill -9 {p.name}"))
    run.set_phase("recover")

    def back(ep: Endpoint, now: float) -> float | None:
        gen0 = marks[ep.id][0]
        p = ep.peer
        if p is not None and ep.joined and p.gen > gen0 and p.first_video is not None:
            return p.first_video - t_kill
        if p is not None and p.gen == gen0 and ep.media_ok(now) and now - t_kill > 3:
            return 0.0  # never lost its media
        return None

    await run.wait_until(lambda: all(back(ep, time.monotonic()) is not None for ep in eps), args.recover_timeout)
    now = time.monotonic()
    times = {ep.id: back(ep, now) for ep in eps}
    affected = [ep.id for ep in eps if times[ep.id] != 0.0]
    recovered = [times[e] for e in affected if times[e] is not None]
    run.set_phase("after kill")
    snap_a, t_a = rep.snapshot(eps), time.monotonic()
    await asyncio.sleep(args.after_seconds)
    snap_b, t_b = rep.snapshot(eps), time.monotonic()
    out["delivered"]["after kill"] = {"seconds": t_b - t_a, "rows": rep.delivered(eps, snap_a, snap_b, t_b - t_a)}
    pin_after = None
    alive = next((p for p in sig if p.alive), None)
    if alive is not None and pin_before is not None:
        pin_after = pinned_node(await cluster_view(http, alive.url, op), meeting_id)
    out["kill"] = {
        "t_kill": run.rel(t_kill),
        "killed": [p.name for p in victims],
        "lost": lost,
        "target_s": 10.0,
        "affected": len(affected),
        "back": len(recovered),
        "back_within_target": sum(1 for t in recovered if t <= 10.0),
        "not_back": [e for e in affected if times[e] is None],
        "not_back_detail": {ep.id: ep.diag() for ep in eps if ep.id in affected and times[ep.id] is None},
        "ws_lost": sum(1 for ep in eps if len(ep.ws_losses) > marks[ep.id][1]),
        "media_reset": sum(1 for ep in eps if len(ep.resets) > marks[ep.id][2]),
        "recovery": rep.summary(recovered),
        # when the terminals were told: seconds after the kill -> count, per event
        "events_after_kill": {
            "ws_lost": rep.histogram([t - t_kill for ep in eps for t in ep.ws_losses[marks[ep.id][1] :]]),
            "media_reset": rep.histogram([t - t_kill for ep in eps for t in ep.resets[marks[ep.id][2] :]]),
            "rejoined": rep.histogram([t - t_kill for ep in eps for t in ep.rejoins if t > t_kill]),
            "endpoints_with_2_or_more_resets": sum(1 for ep in eps if len(ep.resets) - marks[ep.id][2] >= 2),
        },
        "stages": rep.stages([ep for ep in eps if ep.id in affected], t_kill),
        "per_endpoint_s": {e: (round(t, 3) if t is not None else None) for e, t in times.items()},
        "pin_before": pin_before,
        "pin_after": pin_after,
    }
    if args.edge:
        await casc.after_kill(
            cluster, http, op, meeting_id, eps, run.edge_members, snap_a, snap_b, t_b - t_a, t_kill, out
        )


async def main(args: argparse.Namespace) -> dict[str, Any]:
    run = Run(args)
    pin = pin_host_addresses(["127.0.0.1"])  # our aiortc peers gather on 127.0.0.1 only
    out: dict[str, Any] = {
        "benchmark": "province_load",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cores": os.cpu_count(),
        "args": vars(args),
        "loop": loops.running(),
        "server_loop": "uvloop (giaoban serve)",
    }
    try:
        with tempfile.TemporaryDirectory(prefix="province-") as tmp:
            async with aiohttp.ClientSession() as http:
                cluster, op, view = await start_cluster(args, Path(tmp), http)
                try:
                    run.procs = cluster.procs + [Proc("generator", "generator", os.getpid())]
                    out["topology"] = {
                        "layout": "cluster" if cluster.clustered else "local",
                        "processes": [{"name": p.name, "role": p.role, "url": p.url} for p in run.procs],
                    }
                    ticker = asyncio.create_task(run.ticker())
                    try:
                        await scenario(run, cluster, http, op, out)
                    finally:
                        run.stop_ticker = True
                        await ticker
                except BaseException:
                    for p in cluster.servers():
                        if p.alive:
                            print(f"--- {p.name} log tail ---\n{cluster.log_tail(p.name)}", file=sys.stderr)
                    raise
                finally:
                    cluster.close()
                    if args.edge:  # the server logs, for what the cascade did
                        out["server_logs"] = casc.keep_logs(cluster, RESULTS, time.strftime("%Y%m%dT%H%M%S"))
    finally:
        pin.release()
    out["runtime_s"] = run.rel()
    out["cpu"] = rep.cpu_table(run.procs, run.machine, run.t0, len(run.endpoints), out)
    casc.cpu(out)
    out["timeline"] = run.timeline
    out["kills"] = run.kills
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    svg = RESULTS / f"province_load_{stamp}.svg"
    rep.write_svg(run.timeline, run.kills, len(run.endpoints), out, svg)
    out["svg"] = str(svg)
    return out


async def scenario(run: Run, cluster: Cluster, http: aiohttp.ClientSession, op: str, out: dict[str, Any]) -> None:
    args = run.args
    url = cluster.signaling_urls()[0]
    async with http.get(url + "/api/v1/directory", headers={"Authorization": f"Bearer {op}"}) as r:
        directory = (await r.json())["endpoints"]
    chosen, floor = choose(directory, args.endpoints)
    if args.edge:
        members = casc.edge_members(directory, args.edge)
        run.edge_members = {e["id"] for e in chosen if e["id"] in members}
        print(
            f"edge-1 serves {', '.join(args.edge)}: {len(run.edge_members)} of the {len(chosen)} endpoints", flush=True
        )
    print(f"provisioning {len(chosen)} endpoints (secrets + logins)...", flush=True)
    run.set_phase("provision")
    tokens = await provision(http, url, op, [e["id"] for e in chosen])
    start = (datetime.now(VN) + timedelta(minutes=1)).replace(microsecond=0)
    meeting = await post(
        http,
        url,
        "/api/v1/meetings",
        op,
        title="Giao ban toàn tỉnh (load test)",
        chair=CHAIR,
        invited=["all"],
        start=start.isoformat(),
        duration_minutes=60,
        media_modes={"fibre": args.fibre_mode, "thin": "mcu", "mobile": "mcu"},
    )
    out["meeting"] = {"id": meeting["id"], "chair": CHAIR, "floor": floor, "fibre_mode": args.fibre_mode}
    urls = cluster.signaling_urls()
    for i, e in enumerate(chosen):
        sends = e["id"] == CHAIR or e["id"] in floor
        mode = args.fibre_mode if e["link"] == "fibre" else "mcu"
        run.endpoints.append(
            Endpoint(
                e["id"],
                e["link"],
                RENDITION_BY_LINK.get(e["link"], "360p"),
                tokens[e["id"]],
                urls,
                meeting["id"],
                mode,
                run.frames if sends else None,
                chair=e["id"] == CHAIR,
                start_url=i % len(urls) if cluster.clustered else 0,
            )
        )
    modes: dict[str, int] = {}
    for ep in run.endpoints:
        modes[f"{ep.link}/{ep.mode}"] = modes.get(f"{ep.link}/{ep.mode}", 0) + 1
    out["endpoints"] = {"total": len(run.endpoints), "by_link_and_mode": modes}
    await drive(run, cluster, http, op, meeting["id"], floor, out)
    eps = run.endpoints
    out["join"] = {
        "endpoints": len(eps),
        "joined": sum(ep.joined_at is not None for ep in eps),
        "media": sum(ep.first_media_at is not None for ep in eps),
        "join": rep.summary([ep.joined_at for ep in eps if ep.joined_at is not None]),
        "media_time": rep.summary([ep.first_media_at for ep in eps if ep.first_media_at is not None]),
        "no_media_after_herd": out.pop("herd_no_media", {}),
        "server_offer_before_answer": sum(ep.early_offers for ep in eps),
        "errors": {ep.id: ep.errors[:5] for ep in eps if ep.errors},
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--signaling", type=int, default=2, help="signaling nodes (the URLs endpoints are given)")
    p.add_argument("--media", type=int, default=2, help="media nodes (cluster layout only)")
    p.add_argument(
        "--cluster",
        choices=["auto", "on", "off"],
        default="auto",
        help="cluster layout (needs GET /api/v1/cluster); off: every node with its own media",
    )
    p.add_argument("--endpoints", type=int, help="only this many endpoints (default: all 210 non-central)")
    p.add_argument(
        "--fibre-mode",
        dest="fibre_mode",
        choices=["sfu", "both"],
        default="both",
        help="media mode of fibre rooms: both = SFU + the 720p composite and the mix",
    )
    p.add_argument("--spread", type=float, default=3.0, help="seconds over which the endpoints start joining")
    p.add_argument("--join-timeout", dest="join_timeout", type=float, default=60.0)
    p.add_argument("--settle", type=float, default=2.0, help="seconds after the herd before measuring")
    p.add_argument("--floor-seconds", dest="floor_seconds", type=float, default=8.0, help="per commune")
    p.add_argument(
        "--floor-settle",
        dest="floor_settle",
        type=float,
        default=1.5,
        help="seconds after a floor change before the e2e count starts",
    )
    p.add_argument(
        "--edge",
        nargs="?",
        const=casc.DEFAULT_EDGE,
        default=None,
        metavar="DISTRICT_IDS",
        help="one more media node serving these districts (comma-separated) as a cascade edge; "
        f"alone: {casc.DEFAULT_EDGE}",
    )
    p.add_argument("--no-kill", dest="kill", action="store_false", help="skip the kill phase")
    p.add_argument("--recover-timeout", dest="recover_timeout", type=float, default=30.0)
    p.add_argument("--after-seconds", dest="after_seconds", type=float, default=5.0)
    p.add_argument("--max-seconds", dest="max_seconds", type=float, default=330.0, help="hard limit of one run")
    loops.add_option(p, "the endpoints (this process; the servers run uvloop)")
    args = p.parse_args(argv)
    args.edge = [x.strip() for x in args.edge.split(",") if x.strip()] if args.edge else None
    if args.edge and args.cluster == "off":
        p.error("--edge needs the cluster layout")
    if args.kill and args.signaling < 2:
        p.error("the kill phase needs a second signaling node to fail over to: --signaling 2 (or --no-kill)")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds through the finally blocks
    result = loops.run(main(arguments), arguments.loop)
    rep.print_report(result)
    casc.print_report(result)
    path = RESULTS / f"province_load_{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"\nwrote {path}\n      {result['svg']}")

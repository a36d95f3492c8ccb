"""What a node's read of revocations written by other processes costs per tick (#11).

    .venv/bin/python -m loadtests.revocation_reload --revoked 1000 --sessions 200 --ticks 200

A SQLite store holds ``--revoked`` revocations (written through Authenticator.revoke, as the CLI
and the REST API do); a SessionRegistry holds ``--sessions`` connected, unrevoked sessions. Three
kinds of tick, interleaved in rounds so that background load hits them alike:

* ``full``: what the node did every 15 s before: read every revocation, then end_revoked();
* ``unchanged``: what it does now every 0.5 s: one read of the revocation marker, nothing new;
* ``changed``: a revocation was written since the last tick: the marker, then the full read.

Process CPU time (the store's worker thread included) and wall time per tick, medians, on the
default asyncio loop and on uvloop (what ``giaoban serve`` runs). Prints a table and writes JSON
to loadtests/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass

from endpoints.directory import load_directory
from loadtests import loops
from signaling.auth.authenticator import Authenticator, Identity
from signaling.ws.registry import SessionRegistry
from signaling.settings import load_settings
from signaling.store.sqlite_store import SqliteStore
from signaling.auth.tokens import TokenSigner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "loadtests", "results")
HAGIANG = os.path.join(ROOT, "config", "hagiang.yaml")


@dataclass(eq=False)  # hashed by identity: the registry keeps the sessions it is ending in a set
class ConnectedSession:
    """What SessionRegistry.end_revoked reads of a connected session."""

    identity: Identity
    session_id: str


async def _tick(kind: str, auth: Authenticator, sessions: SessionRegistry, other: Authenticator, n: int) -> None:
    if kind == "full":
        await auth.load_revocations()
        await sessions.end_revoked()
    elif kind == "changed":
        await other.revoke("operator", f"gone-{n}")  # not timed: see run()
    elif await auth.load_revocations(only_if_changed=True):
        await sessions.end_revoked()


async def run(revoked: int, n_sessions: int, ticks: int) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(os.path.join(tmp, "giaoban.db"))
        await store.start()
        directory = load_directory(HAGIANG)
        ttl = load_settings(None, {"directory": HAGIANG, "data_dir": tmp}).tokens
        signer = await TokenSigner.from_store(store)
        auth, other = Authenticator(store, directory, signer, ttl), Authenticator(store, directory, signer, ttl)
        for i in range(revoked):
            await other.revoke("operator", f"old-{i}")
        await auth.load_revocations()
        sessions = SessionRegistry(store, "bench", auth, release_floor=lambda *room: asyncio.sleep(0))  # no rooms
        now = time.time()
        for i in range(n_sessions):  # connected with tokens issued after every revocation
            ident = Identity("operator", f"op-{i}", f"op-{i}", issued_at=now)
            sessions._sessions[f"s{i}"] = ConnectedSession(ident, f"s{i}")
        cpu: dict[str, list[float]] = {"full": [], "unchanged": [], "changed": []}
        wall: dict[str, list[float]] = {k: [] for k in cpu}
        for n in range(ticks):
            for kind in cpu:
                if kind == "changed":
                    await _tick("changed", auth, sessions, other, n)  # the write; the read is timed below
                c0, w0 = time.process_time(), time.perf_counter()
                await _tick("full" if kind == "full" else "unchanged", auth, sessions, other, n)
                cpu[kind].append(time.process_time() - c0)
                wall[kind].append(time.perf_counter() - w0)
        await store.stop()
    return {k: {"cpu_us": statistics.median(cpu[k]) * 1e6, "wall_us": statistics.median(wall[k]) * 1e6} for k in cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--revoked", type=int, default=1000)
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--ticks", type=int, default=200)
    args = ap.parse_args()
    out = {"revoked": args.revoked, "sessions": args.sessions, "ticks": args.ticks, "loops": {}}
    print(f"{args.revoked} revocations, {args.sessions} sessions, median of {args.ticks} ticks")
    print(f"{'loop':8} {'tick':10} {'CPU µs':>10} {'wall µs':>10}")
    for name in loops.LOOPS:
        loop = loops.factory(name)()
        try:
            result = loop.run_until_complete(run(args.revoked, args.sessions, args.ticks))
        finally:
            loop.close()
        out["loops"][name] = result
        for kind, fig in result.items():
            print(f"{name:8} {kind:10} {fig['cpu_us']:10.0f} {fig['wall_us']:10.0f}")
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"revocation_reload_{time.strftime('%Y%m%dT%H%M%S')}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
    print(f"written to {path}")


if __name__ == "__main__":
    main()

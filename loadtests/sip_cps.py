"""Calls per second the SIP stack sets up (#14): sipp (Debian sip-tester) dials a SipStack that
answers every INVITE with a fixed SDP, at a ramp of rates, each for a bounded number of calls.

    .venv/bin/python -m loadtests.sip_cps [--rates 50,100,200,300,400] [--seconds 4] [--transport udp|tcp]
                                          [--loop uvloop|asyncio]

Each call is sipp's built-in uac: INVITE, 100, 200, ACK, 100 ms of call, BYE, 200 (7 messages, 4 of
them ours). Per rate: calls sipp reports successful and failed, the calls per second achieved
(successful calls / wall time of the step), the stack's process CPU per call, its share of one
core, and the INVITE retransmissions it saw (a late 200 over UDP). The stack runs in this process
and sipp beside it on the same cores: the CPU figures are the stack's alone. A table on stdout,
JSON in loadtests/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

from loadtests import loops
from signaling.sip.stack import SipLimits, SipStack
from signaling.sip_settings import SipSettings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "loadtests", "results")
SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
MAX_CALLS_PER_STEP = 2000
OPEN = SipLimits(invite_rate=1e6, invite_burst=1_000_000, message_rate=1e6, message_burst=1_000_000,
                 calls_per_address=100_000, max_calls=100_000)  # fmt: skip


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sipp_counts(screen: str) -> tuple[int, int]:
    def last(label: str) -> int:
        found = re.findall(rf"{label}\s+\|\s+\d+\s+\|\s+(\d+)", screen)
        return int(found[-1]) if found else 0

    return last("Successful call"), last("Failed call")


async def step(stack: SipStack, rate: int, seconds: float, transport: str, workdir: str) -> dict:
    calls = min(MAX_CALLS_PER_STEP, max(1, int(rate * seconds)))
    host, port = stack.addresses[transport]
    before_counts = dict(stack.counts)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        shutil.which("sipp") or "sipp", f"{host}:{port}", "-sn", "uac", "-s", "7001", "-i", "127.0.0.1", "-p", str(free_port()),
        "-t", "t1" if transport == "tcp" else "u1", "-r", str(rate), "-m", str(calls), "-l", str(max(50, rate)),
        "-d", "100", "-nostdin", "-timeout", str(int(seconds * 4 + 30)), "-timeout_error",
        cwd=workdir, stdout=asyncio.subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    ok, failed = sipp_counts(out.decode(errors="replace"))
    invites = stack.counts["INVITE"] - before_counts.get("INVITE", 0)
    return {
        "rate": rate, "calls": calls, "successful": ok, "failed": failed, "wall_s": round(wall, 2),
        "cps": round(ok / wall, 1) if wall else 0.0, "cpu_us_per_call": round(cpu / max(ok, 1) * 1e6, 1),
        "core_pct": round(cpu / wall * 100, 1), "invite_retransmissions": max(0, invites - calls),
        "left": len(stack.calls),
    }  # fmt: skip


async def main(args: argparse.Namespace) -> tuple[list[dict], str]:
    async def answer(call) -> None:
        await call.answer(SDP)

    settings = SipSettings(enabled=True, host="127.0.0.1", port=0, transports=["udp", "tcp"])
    stack = SipStack(settings, answer, limits=OPEN, session_expires=None)
    await stack.start()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as workdir:
            for rate in args.rates:
                rows.append(await step(stack, rate, args.seconds, args.transport, workdir))
                await asyncio.sleep(1.0)
    finally:
        await stack.stop()
    return rows, loops.running()


def table(rows: list[dict], transport: str, loop: str) -> str:
    lines = [f"SIP calls per second ({transport}, {loop}); sipp uac: INVITE/100/200/ACK, 100 ms, BYE/200",
             f"{'rate':>5} {'calls':>6} {'ok':>6} {'failed':>6} {'cps':>7} {'µs/call':>8} {'% core':>7} {'INV retx':>8}"]  # fmt: skip
    for r in rows:
        lines.append(f"{r['rate']:>5} {r['calls']:>6} {r['successful']:>6} {r['failed']:>6} {r['cps']:>7} "
                     f"{r['cpu_us_per_call']:>8} {r['core_pct']:>7} {r['invite_retransmissions']:>8}")  # fmt: skip
    return "\n".join(lines)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="50,100,200,300,400", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--seconds", type=float, default=4.0, help="calls per step = rate x seconds (at most 2000)")
    parser.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    loops.add_option(parser, "the SIP stack")
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        raise SystemExit("sipp is not installed (apt-get install sip-tester; scripts/setup.sh does)")
    rows, loop = loops.run(main(args), args.loop)
    print(table(rows, args.transport, loop))
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"sip_cps_{time.strftime('%Y%m%dT%H%M%S')}.json")
    with open(path, "w") as f:
        json.dump({"transport": args.transport, "loop": loop, "seconds": args.seconds,
                   "load_average": os.getloadavg(), "rows": rows}, f, indent=2)  # fmt: skip
    print(f"written {path}")


if __name__ == "__main__":
    cli()

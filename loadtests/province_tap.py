"""`giaoban serve` with a counter on its cascade links, for the province load test's ``--edge`` run.

    python -m loadtests.province_tap <the arguments of signaling.cli>   (env GIAOBAN_TAP=<file>)

Only what a cascade link receives is counted (``mcu.peer.transport.PeerTransport`` named ``cascade:...``: on an
edge, the origin's streams coming down; on the origin, the edge's up lines): RTP packets and
bytes after SRTP (an SRTP packet is 10 bytes longer: its auth tag), per link name. Every 0.25 s
the counters go to the file as JSON ``{"t": CLOCK_MONOTONIC, "links": {name: [packets, bytes]}}``
(written to a temporary file then renamed, so a reader never sees half of it). The other peers'
packets take no extra step: the hook is installed on cascade links only.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

from mcu.peer.transport import PeerTransport

COUNTS: dict[str, list[int]] = {}
_attach = PeerTransport.attach


def _counting_attach(self: PeerTransport, dtls, rtcp_ssrc: int) -> None:
    fresh = dtls is not self.dtls and not self.closed
    _attach(self, dtls, rtcp_ssrc)
    if not fresh or not self.name.startswith("cascade:"):
        return
    counts = COUNTS.setdefault(self.name, [0, 0])
    handle = dtls._handle_rtp_data

    async def counted(data: bytes, arrival_time_ms: int = 0) -> None:
        counts[0] += 1
        counts[1] += len(data)
        await handle(data, arrival_time_ms)

    dtls._handle_rtp_data = counted


def _writer(path: str) -> None:
    tmp = path + ".tmp"
    while True:
        try:
            body = json.dumps({"t": time.monotonic(), "links": {k: list(v) for k, v in list(COUNTS.items())}})
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(body)
            os.replace(tmp, path)
        except (OSError, RuntimeError):
            pass
        time.sleep(0.25)


def main() -> int:
    PeerTransport.attach = _counting_attach
    path = os.environ.get("GIAOBAN_TAP")
    if path:
        threading.Thread(target=_writer, args=(path,), daemon=True, name="tap").start()
    from signaling.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())

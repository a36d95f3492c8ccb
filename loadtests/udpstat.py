"""UDP receive-buffer drops, per process and machine-wide, from /proc (Linux only).

``socket_drops(pid)`` is what ``ss -uam`` shows as ``d<n>`` in each socket's skmem, summed
over the sockets a process holds (the ``drops`` column of /proc/net/udp, matched to the
process by socket inode). ``rcvbuf_errors()`` is the machine-wide ``Udp: RcvbufErrors`` of
/proc/net/snmp: it also counts drops at other processes' sockets (load clients included).
``ingress()`` / ``ingress_row()``: both, plus the loss the server told an aiortc publisher in
its receiver reports, and the difference between two readings (loadtests/sfu_fanout.py).
"""

from __future__ import annotations

import os
from typing import Any


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def socket_drops(pid: int) -> dict[str, int]:
    """{"local address:port": drops} for every UDP socket of ``pid`` (IPv4 and IPv6)."""
    inodes = _socket_inodes(pid)
    out: dict[str, int] = {}
    for table in ("udp", "udp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
            if len(fields) >= 13 and fields[9] in inodes:
                out[fields[1]] = int(fields[12])
    return out


def rcvbuf_errors() -> int:
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    header, values = rows[0], rows[1]
    return int(values[header.index("RcvbufErrors")])


async def ingress(pid: int, pub_pc: Any) -> dict:
    """Server socket drops, machine RcvbufErrors, and what the publisher was told it lost."""
    lost, fraction = 0, 0.0
    for sender in pub_pc.getSenders():
        for stat in (await sender.getStats()).values():
            if stat.type == "remote-inbound-rtp":
                lost += stat.packetsLost
                fraction = max(fraction, stat.fractionLost)
    return {
        "drops": socket_drops(pid),
        "rcvbuf_errors": rcvbuf_errors(),
        "pub_lost": lost,
        "pub_fraction_lost": fraction,
    }


def ingress_row(i0: dict, i1: dict, s1: dict) -> dict:
    deltas = [n - i0["drops"].get(addr, 0) for addr, n in i1["drops"].items()]
    return {
        "server_socket_drops": sum(deltas),
        "server_socket_drops_max": max(deltas, default=0),
        "rcvbuf_errors_machine": i1["rcvbuf_errors"] - i0["rcvbuf_errors"],
        "publisher_reported_lost": i1["pub_lost"] - i0["pub_lost"],
        "publisher_fraction_lost_last": i1["pub_fraction_lost"],
        "loop_lag_max_ms": s1["lag_max_ms"],
        "loop_lag_p99_ms": s1["lag_p99_ms"],
    }

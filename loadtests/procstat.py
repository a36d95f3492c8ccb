"""Process and machine counters from /proc, shared by the benchmarks (Linux only).

CPU is reported as process CPU time per unit of work: on these shared 2-core machines wall
time is noise, CPU time of the measured process is not.
"""

from __future__ import annotations

import os
import re
import threading

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process and its threads, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def cpu_seconds(pid: int) -> float:
    user, system = proc_cpu(pid)
    return user + system


def proc_cpu_ns(pid: int) -> int:
    """CPU time (ns, user+sys) of the live threads of a process, from their schedstat: a
    finer clock than /proc/<pid>/stat's 10 ms ticks (threads that exited are not counted)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, all cores, from /proc/stat."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks[:8]) - idle) / CLK_TCK, sum(ticks[:8]) / CLK_TCK


def udp_errors() -> dict[str, int]:
    """Machine-wide UDP drop counters (socket buffers full) from /proc/net/snmp."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    table = dict(zip(rows[0][1:], (int(x) for x in rows[1][1:])))
    return {k: table.get(k, 0) for k in ("InErrors", "RcvbufErrors", "SndbufErrors")}


def proc_rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def thread_cpu() -> dict[str, float]:
    """CPU seconds (utime + stime) of this process's live threads, summed by Python thread name
    without its number (``compose_0`` and ``compose_1`` -> ``compose``; unnamed -> ``other``)."""
    names = {t.native_id: re.sub(r"_\d+$", "", t.name) for t in threading.enumerate()}
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(tid), "other")
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out

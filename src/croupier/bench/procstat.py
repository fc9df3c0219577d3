"""A process's CPU time and resident memory, read from ``/proc`` (Linux)."""

from __future__ import annotations

import os

__all__ = ["cpu_seconds", "cpu_split", "listen_overflows", "rss_bytes"]

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_split(pid: int) -> tuple[float, float]:
    """User and system CPU time of every thread of ``pid`` so far, in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        raw = f.read()
    # The command name may hold spaces and parentheses: split after its last ')'.
    fields = raw[raw.rindex(b")") + 2 :].split()
    return int(fields[11]) / _TICKS, int(fields[12]) / _TICKS


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of every thread of ``pid`` so far, in seconds."""
    user, system = cpu_split(pid)
    return user + system


def rss_bytes(pid: int) -> int:
    """The resident set size of ``pid`` in bytes."""
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def listen_overflows() -> int:
    """Connections the host's kernel dropped because a listening socket's accept queue was
    full, so far (``TcpExt: ListenOverflows``; every process's listening sockets)."""
    with open("/proc/net/netstat", "rb") as f:
        lines = f.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        if names.startswith(b"TcpExt:"):
            fields = dict(zip(names.split()[1:], values.split()[1:], strict=True))
            return int(fields.get(b"ListenOverflows", 0))
    return 0

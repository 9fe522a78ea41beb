"""This process's peak resident memory, measured one way by every engine that reports it."""

from __future__ import annotations

import resource


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB.

    Linux's VmHWM from /proc/self/status; ru_maxrss where that is missing (it can carry the peak of the
    process this one was forked from, so it is the fallback, not the first choice).
    """
    try:
        with open("/proc/self/status") as status:
            kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib / 1024.0

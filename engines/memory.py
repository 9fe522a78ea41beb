"""This process's resident memory and the machine's free memory, measured one way by every engine."""

from __future__ import annotations

import ctypes
import resource
from pathlib import Path


def _proc_kib(path: str, field: str) -> int | None:
    """A "Field:  N kB" value of a /proc file, or None where it cannot be read."""
    try:
        with open(path) as lines:
            return next(int(line.split()[1]) for line in lines if line.startswith(field + ":"))
    except (OSError, StopIteration):
        return None


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB.

    Linux's VmHWM from /proc/self/status; ru_maxrss where that is missing (it can carry the peak of the
    process this one was forked from, so it is the fallback, not the first choice).
    """
    kib = _proc_kib("/proc/self/status", "VmHWM")
    if kib is None:
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib / 1024.0


def anon_rss_mb() -> float | None:
    """This process's anonymous resident memory in MiB (Linux's RssAnon: heap and stacks, not the pages of
    memory-mapped files, which the kernel can drop); None where /proc does not say."""
    kib = _proc_kib("/proc/self/status", "RssAnon")
    return None if kib is None else kib / 1024.0


def reset_peak_rss() -> float | None:
    """Make the peak (VmHWM) this process's current RSS and return that in MiB; None where Linux's
    /proc/self/clear_refs is not at hand (then a peak measured from here on means nothing)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    kib = _proc_kib("/proc/self/status", "VmRSS")
    return None if kib is None else kib / 1024.0


def available_memory_bytes() -> int | None:
    """What the machine can still give processes without swapping (MemAvailable), or None if unknown."""
    kib = _proc_kib("/proc/meminfo", "MemAvailable")
    return None if kib is None else kib * 1024


def release_free_heap() -> bool:
    """Return the C heap's free memory to the system (glibc's malloc_trim); False where that is not glibc."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        return False
    return True

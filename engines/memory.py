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
    """What this process can still be given without swapping or being killed, or None if unknown: the
    machine's MemAvailable, or less where a control group (a container, a systemd slice) caps it."""
    kib = _proc_kib("/proc/meminfo", "MemAvailable")
    known = [n for n in (None if kib is None else kib * 1024, cgroup_headroom()) if n is not None]
    return min(known) if known else None


CGROUP_ROOT = Path("/sys/fs/cgroup")
# cgroup v1 writes "no limit" as the largest page-aligned signed 64-bit number; anything above this is none.
NO_LIMIT = 1 << 60


def _read_int(path: Path) -> int | None:
    """A cgroup file's number; None where it is missing or says something else ("max": no limit)."""
    text = path.read_text().strip()
    return int(text) if text.isascii() and text.isdigit() else None


def _stat_bytes(path: Path, field: str) -> int:
    """A "field N" line of a cgroup's memory.stat; 0 where it is missing or cannot be read."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, ValueError):
        return 0
    for line in lines:
        name, _, value = line.partition(" ")
        if name == field and value.strip().isascii() and value.strip().isdigit():
            return int(value)
    return 0


def _cgroup_dirs(root: Path, relative: str) -> list[Path]:
    """The folder of this process's control group under a hierarchy mounted at `root`, and its ancestors up
    to `root`: each one's limit applies. A container that mounts its own group at `root` (its path then
    missing below it), or a path outside the mount ("/../..": the group is not in this namespace), has
    `root` alone."""
    parts = [part for part in relative.split("/") if part not in ("", ".")]
    if ".." in parts:
        parts = []
    return [folder for n in range(len(parts), -1, -1) if (folder := root.joinpath(*parts[:n])).is_dir()]


def _group_headroom(folder: Path, files: tuple[str, str, str]) -> int | None:
    """Limit - usage + inactive file pages of one group (files: limit, usage, memory.stat field), or None
    where it has no limit or cannot be read."""
    try:
        limit, usage = _read_int(folder / files[0]), _read_int(folder / files[1])
    except (OSError, ValueError):  # missing, unreadable, not text
        return None
    if limit is None or limit >= NO_LIMIT or usage is None:
        return None
    return max(limit - usage + _stat_bytes(folder / "memory.stat", files[2]), 0)


def cgroup_headroom(proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = CGROUP_ROOT) -> int | None:
    """Bytes this process's control groups can still take before the tightest of their memory limits, or
    None where no group has one (or none can be read); 0 where a group is at its limit.

    Per group: limit - usage + inactive file pages (page cache the kernel drops before it kills anything).
    cgroup v2 (memory.max, memory.current) where `root` or `root`/unified holds the unified hierarchy with
    the memory controller, and v1's memory controller under `root`/memory (or the folder named by its
    controllers, when it is mounted with others): memory.limit_in_bytes, memory.usage_in_bytes.
    """
    try:
        lines = proc_cgroup.read_text().splitlines()
    except (OSError, ValueError):
        return None
    headroom = []
    for line in lines:
        number, controllers, relative = [*line.split(":", 2), "", ""][:3]
        try:
            if number == "0":
                mounts = [m for m in (root, root / "unified") if "memory" in _controllers(m)]
                files = ("memory.max", "memory.current", "inactive_file")
            elif "memory" in controllers.split(","):
                mounts = [m for m in (root / "memory", root / controllers) if m.is_dir()][:1]
                files = ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
            else:
                continue
            for mount in mounts:
                for folder in _cgroup_dirs(mount, relative):
                    if (room := _group_headroom(folder, files)) is not None:
                        headroom.append(room)
        except OSError:  # a folder on the way that cannot be searched
            continue
    return min(headroom) if headroom else None


def _controllers(mount: Path) -> list[str]:
    """The controllers a cgroup v2 hierarchy mounted at `mount` offers (none where it is not one)."""
    try:
        return (mount / "cgroup.controllers").read_text().split()
    except (OSError, ValueError):
        return []


def release_free_heap() -> bool:
    """Return the C heap's free memory to the system (glibc's malloc_trim); False where that is not glibc."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        return False
    return True

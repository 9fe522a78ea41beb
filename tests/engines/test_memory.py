"""The peak resident memory every engine reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# In a fresh interpreter, so no earlier test has already raised the high-water mark.
PROBE = """
import json, numpy as np
from engines.memory import peak_rss_mb
before = peak_rss_mb()
block = np.ones(200 * 2**20, dtype=np.uint8)  # 200 MiB, every page written
during = peak_rss_mb()
del block
print(json.dumps([before, during, peak_rss_mb()]))
"""


def test_peak_rises_by_what_was_touched_and_never_falls():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, cwd=ROOT)
    before, during, after = json.loads(out.stdout)
    assert 190 < during - before < 260  # the 200 MiB block, give or take the interpreter's own pages
    assert after > during - 1  # a high-water mark: freeing does not lower it (the kernel's counters are
    # synchronised lazily, so allow a few pages)


RESET_PROBE = """
import json, numpy as np
from engines.memory import peak_rss_mb, reset_peak_rss
block = np.ones(200 * 2**20, dtype=np.uint8)
del block
high = peak_rss_mb()
now = reset_peak_rss()
print(json.dumps([high, now, peak_rss_mb()]))
"""


def test_a_reset_brings_the_peak_down_to_the_current_rss():
    out = subprocess.run([sys.executable, "-c", RESET_PROBE], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    high, now, after = json.loads(out.stdout)
    assert high - now > 150  # the freed 200 MiB block no longer counts
    assert abs(after - now) < 5


def test_available_memory_is_a_plausible_share_of_the_machine():
    from engines.memory import available_memory_bytes

    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < available_memory_bytes() <= total


ANON_PROBE = """
import json, mmap, numpy as np, sys
from engines.memory import anon_rss_mb
before = anon_rss_mb()
with open(sys.argv[1], "rb") as f:
    mapped = np.frombuffer(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), np.uint8)
    total = int(mapped.sum(dtype=np.int64))  # every page of the file read in
after_file = anon_rss_mb()
block = np.ones(100 * 2**20, dtype=np.uint8)
print(json.dumps([before, after_file, anon_rss_mb()]))
"""


def test_anonymous_memory_counts_the_heap_and_not_a_mapped_file(tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(b"\1" * (100 * 2**20))
    out = subprocess.run([sys.executable, "-c", ANON_PROBE, str(path)], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    before, after_file, after_block = json.loads(out.stdout)
    assert after_file - before < 10  # 100 MiB of file pages resident, none of them anonymous
    assert 95 < after_block - after_file < 130


def _group(folder: Path, **files: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name.replace("_", ".", 1)).write_text(text)


def _proc(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cgroup"
    path.write_text(text)
    return path


def test_a_cgroup_v2_limit_leaves_its_headroom_and_the_tightest_ancestor_wins(tmp_path):
    from engines.memory import cgroup_headroom

    root = tmp_path / "fs"
    _group(root, cgroup_controllers="memory")
    _group(root / "user.slice", memory_max=str(8 << 30), memory_current=str(7 << 30),
           memory_stat=f"anon 1\ninactive_file {1 << 29}\nactive_file 5\n")
    _group(root / "user.slice" / "job", memory_max="max", memory_current=str(1 << 30))
    proc = _proc(tmp_path, "0::/user.slice/job\n")
    # The job itself is unlimited; its parent has 1 GiB left plus 512 MiB of droppable page cache.
    assert cgroup_headroom(proc, root) == (1 << 30) + (1 << 29)
    _group(root / "user.slice" / "job", memory_max=str(2 << 30), memory_current=str(int(1.75 * (1 << 30))))
    assert cgroup_headroom(proc, root) == 1 << 28
    _group(root / "user.slice", memory_max="max")
    _group(root / "user.slice" / "job", memory_max="max")
    assert cgroup_headroom(proc, root) is None


def test_a_container_that_mounts_its_own_cgroup_v2_is_read_at_the_root(tmp_path):
    from engines.memory import cgroup_headroom

    root = tmp_path / "fs"
    _group(root, cgroup_controllers="memory", memory_max=str(4 << 30), memory_current=str(3 << 30))
    # /proc names the group as the host sees it; the container shows it at its root.
    assert cgroup_headroom(_proc(tmp_path, "0::/system.slice/docker-abc.scope\n"), root) == 1 << 30


def test_a_cgroup_v1_memory_controller_limits_and_its_no_limit_value_does_not(tmp_path):
    from engines.memory import cgroup_headroom

    root = tmp_path / "fs"
    _group(root / "unified", cgroup_controllers="")  # a hybrid host: v2 without the memory controller
    group = root / "memory" / "docker" / "abc"
    _group(group, memory_limit_in_bytes=str(6 << 30), memory_usage_in_bytes=str(5 << 30),
           memory_stat=f"inactive_file 7\ntotal_inactive_file {1 << 30}\n")
    _group(root / "memory", memory_limit_in_bytes="9223372036854771712", memory_usage_in_bytes=str(40 << 30))
    proc = _proc(tmp_path, "5:cpuacct,cpu:/docker/abc\n4:memory:/docker/abc\n0::/docker/abc\n")
    assert cgroup_headroom(proc, root) == 2 << 30
    _group(group, memory_limit_in_bytes="9223372036854771712")
    assert cgroup_headroom(proc, root) is None


def test_no_cgroup_file_means_no_cgroup_limit(tmp_path):
    from engines.memory import cgroup_headroom

    assert cgroup_headroom(tmp_path / "missing", tmp_path) is None


def test_available_memory_is_the_least_of_the_machine_and_the_cgroup(monkeypatch):
    from engines import memory

    monkeypatch.setattr(memory, "_proc_kib", lambda path, field: 4 << 20)  # MemAvailable: 4 GiB
    for cgroup, expected in ((1 << 20, 1 << 20), (16 << 30, 4 << 30), (None, 4 << 30), (0, 0)):
        monkeypatch.setattr(memory, "cgroup_headroom", lambda cgroup=cgroup: cgroup)
        assert memory.available_memory_bytes() == expected


def test_a_cgroup_at_or_over_its_limit_has_no_headroom_not_an_unknown_one(tmp_path):
    from engines.memory import cgroup_headroom

    root = tmp_path / "fs"
    _group(root, cgroup_controllers="cpu memory", memory_max=str(1 << 30), memory_current=str(1 << 31))
    assert cgroup_headroom(_proc(tmp_path, "0::/\n"), root) == 0
    _group(root, memory_max="0")
    assert cgroup_headroom(_proc(tmp_path, "0::/\n"), root) == 0


@pytest.mark.parametrize("content", ["\u00b2", "12 34", "-5", "", "\u00e9\u00e9"])
def test_unreadable_cgroup_values_mean_no_limit_not_a_crash(tmp_path, content):
    from engines.memory import cgroup_headroom

    root = tmp_path / "fs"
    _group(root, cgroup_controllers="memory", memory_current=str(1 << 30), memory_stat=content)
    (root / "memory.max").write_bytes(content.encode("latin-1", errors="replace"))
    assert cgroup_headroom(_proc(tmp_path, "0::/\n"), root) is None
    (root / "memory.max").write_text(str(2 << 30))  # a stat file that says nothing useful: no page cache
    assert cgroup_headroom(_proc(tmp_path, "0::/\n"), root) == 1 << 30
    (tmp_path / "cgroup").write_bytes(b"0::/\xff\xfe\n")  # /proc not UTF-8
    assert cgroup_headroom(tmp_path / "cgroup", root) is None


def test_a_group_outside_the_namespace_is_not_read_from_a_sibling_folder(tmp_path):
    from engines.memory import cgroup_headroom

    root = tmp_path / "fs"
    _group(root, cgroup_controllers="memory")
    _group(root / "other", memory_max=str(1 << 30), memory_current="0")  # someone else's group
    assert cgroup_headroom(_proc(tmp_path, "0::/../other\n"), root) is None


def test_hybrid_and_shared_mounts_are_found(tmp_path):
    from engines.memory import cgroup_headroom

    hybrid = tmp_path / "hybrid"
    _group(hybrid / "unified", cgroup_controllers="memory pids")
    _group(hybrid / "unified" / "job", memory_max=str(3 << 30), memory_current=str(1 << 30))
    assert cgroup_headroom(_proc(tmp_path, "0::/job\n"), hybrid) == 2 << 30
    shared = tmp_path / "shared"  # v1 memory mounted together with another controller, its parent limited
    _group(shared / "cpu,memory", memory_limit_in_bytes=str(5 << 30), memory_usage_in_bytes=str(4 << 30))
    _group(shared / "cpu,memory" / "job", memory_limit_in_bytes=str(9 << 30), memory_usage_in_bytes="0")
    assert cgroup_headroom(_proc(tmp_path, "3:cpu,memory:/job\n"), shared) == 1 << 30

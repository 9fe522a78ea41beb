"""The peak resident memory every engine reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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

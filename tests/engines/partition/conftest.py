"""Rank pools shared by the multi-process tests: each pool's processes import torch and MONAI once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from engines.partition.launch import RankPool


@pytest.fixture(scope="session")
def ranks():
    """ranks(n) -> a live RankPool of n gloo CPU ranks (one thread each), restarted if a test broke it."""
    pools: dict[int, RankPool] = {}

    def get(n: int) -> RankPool:
        if n not in pools or not pools[n].alive:
            pools[n] = RankPool(n, threads=1, collective_timeout_s=60)
        return pools[n]

    yield get
    with ThreadPoolExecutor() as closing:  # each pool takes seconds to leave; close them together
        list(closing.map(RankPool.close, pools.values()))

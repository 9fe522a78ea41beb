"""What the launcher puts into the environment of the CPU ranks it starts."""

from __future__ import annotations

import os

from engines.partition.launch import CPU_RANK_ENV, cpu_rank_env

KEY = "MALLOC_MMAP_THRESHOLD_"


def test_cpu_ranks_get_the_allocator_setting_only_while_starting(monkeypatch):
    monkeypatch.delenv(KEY, raising=False)
    with cpu_rank_env("gloo") as added:
        assert os.environ[KEY] == CPU_RANK_ENV[KEY] == added[KEY]
    assert KEY not in os.environ  # the launching process is left as it was


def test_the_users_setting_wins_and_gpu_ranks_get_nothing(monkeypatch):
    monkeypatch.setenv(KEY, "65536")
    with cpu_rank_env("gloo") as added:
        assert added == {} and os.environ[KEY] == "65536"
    assert os.environ[KEY] == "65536"
    monkeypatch.delenv(KEY)
    with cpu_rank_env("nccl") as added:
        assert added == {} and KEY not in os.environ

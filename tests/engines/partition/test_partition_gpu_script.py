"""benchmarks/partition_gpu.py's bookkeeping, on the CPU with torch.cuda's memory calls stood in for: a
GPU run gets one chance, so a failed case, a run cut short or a time budget must not lose what was
measured."""

from __future__ import annotations

import json
import types

import pytest
import torch
import torch.distributed as dist

from benchmarks import partition_gpu, partition_memory


@pytest.fixture()
def fake_gpu(monkeypatch):
    """The script's CUDA calls answered on the CPU: peak memory = 1 MiB + 3 kB per voxel of the last phantom
    made; the one-rank group on gloo."""
    made = []
    real_phantom = partition_memory.phantom_block

    def phantom(shape, slices, device=None):
        made.append(shape)
        return real_phantom(shape, slices, device)

    monkeypatch.setattr(partition_gpu, "phantom_block", phantom)
    monkeypatch.setattr(partition_gpu, "DEVICE", "cpu")
    for name, value in dict(
            is_available=lambda: True, synchronize=lambda *a: None, reset_peak_memory_stats=lambda *a: None,
            max_memory_allocated=lambda *a: 2**20 + 3000 * made[-1][0] ** 3, empty_cache=lambda: None,
            get_device_name=lambda *a: "Stand-in GPU",
            get_device_properties=lambda *a: types.SimpleNamespace(total_memory=80 * 2**30)).items():
        monkeypatch.setattr(torch.cuda, name, value)
    real_init = dist.init_process_group
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kwargs: real_init("gloo", **kwargs))
    return made


def test_a_failed_case_is_recorded_and_the_others_kept(tmp_path, fake_gpu, monkeypatch, capsys):
    real_steps = partition_gpu.train_steps

    def steps(net, optimizer, image, labels, mesh, *args, **kwargs):
        if image.shape[-1] == 48 and not isinstance(mesh, partition_gpu.BlockPathsMesh):
            raise RuntimeError("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR")
        return real_steps(net, optimizer, image, labels, mesh, *args, **kwargs)

    monkeypatch.setattr(partition_gpu, "train_steps", steps)
    out = tmp_path / "gpu.json"
    assert partition_gpu.main(["--sizes", "32,48", "--steps", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    cases = {(c["variant"], c["size"]): c for c in result["cases"]}
    assert len(cases) == 6
    assert cases[("partitioned", 48)]["error"] == "RuntimeError: cuDNN error: CUDNN_STATUS_INTERNAL_ERROR"
    assert all(c["peak_bytes"] for key, c in cases.items() if key != ("partitioned", 48))
    assert result["fit"]["bytes_per_voxel"] == pytest.approx(3000)  # block paths ran at both sizes
    assert result["ranks_needed"] and result["conv_fp32_precision"] in ("tf32", "ieee")
    table = capsys.readouterr().out
    assert "| 48³ |" in table and "error" in table


def test_each_case_is_written_as_it_ends_and_a_budget_skips_the_rest(tmp_path, fake_gpu, monkeypatch):
    out = tmp_path / "gpu.json"
    seen = []
    real_case = partition_gpu._case

    def case(*args):
        if out.exists():  # what a run killed now would leave
            seen.append(len(json.loads(out.read_text())["cases"]))
        return real_case(*args)

    monkeypatch.setattr(partition_gpu, "_case", case)
    clock = iter(range(0, 1000, 10))  # each reading of the clock 10 s after the last: 3 cases start by 35 s
    monkeypatch.setattr(partition_gpu, "monotonic", lambda: next(clock))
    assert partition_gpu.main(["--sizes", "32,48", "--steps", "1", "--budget-s", "35",
                               "--out", str(out)]) == 1
    cases = json.loads(out.read_text())["cases"]
    assert seen == [1, 2]  # the first case was on disk before the second began, both before the third
    assert [c.get("skipped") for c in cases] == [None] * 3 + ["past --budget-s 35"] * 3
    assert json.loads(out.read_text())["fit"] is None  # one size only: no fit, exit 1

"""The ranks-needed arithmetic behind benchmarks/partition_gpu.py's table (no GPU needed)."""

from __future__ import annotations

import math

import pytest

from engines.partition.capacity import GIB, MemoryModel, ranks_needed, valid_splits


def test_fit_recovers_a_line_and_predicts_per_rank_memory():
    truth = MemoryModel(2 * GIB, 1100.0)
    voxels = [256**3, 448**3, 320**3]
    model = MemoryModel.fit(voxels, [truth.fixed_bytes + truth.bytes_per_voxel * v for v in voxels])
    assert model.fixed_bytes == pytest.approx(truth.fixed_bytes, rel=1e-9)
    assert model.bytes_per_voxel == pytest.approx(truth.bytes_per_voxel, rel=1e-9)
    assert model.per_rank_bytes((512, 512, 512), (2, 2, 1)) == pytest.approx(2 * GIB + 1100.0 * 512**3 / 4)


def test_negative_intercept_falls_back_to_a_line_through_the_origin_covering_every_point():
    model = MemoryModel.fit([100, 200], [50.0, 160.0])  # the fitted line would start at -60
    assert model.fixed_bytes == 0
    assert model.bytes_per_voxel == pytest.approx(0.8)  # 160 / 200 covers both points
    assert all(model.per_rank_bytes((v, 1, 1), (1, 1, 1)) >= p for v, p in [(100, 50.0), (200, 160.0)])


def test_fit_needs_two_sizes():
    with pytest.raises(ValueError, match="two or more volume sizes"):
        MemoryModel.fit([256**3, 256**3], [1.0, 2.0])


def test_valid_splits_leave_blocks_that_are_multiples():
    assert valid_splits(512, 16) == [1, 2, 4, 8, 16, 32]
    assert valid_splits(96, 16) == [1, 2, 3, 6]
    assert valid_splits(8, 16) == []


def test_ranks_needed_is_the_smallest_mesh_that_fits():
    model = MemoryModel(1 * GIB, 1000.0)
    device = 80 * GIB
    ranks, mesh = ranks_needed((512, 512, 512), model, device)
    assert math.prod(mesh) == ranks
    assert model.per_rank_bytes((512,) * 3, mesh) <= 0.9 * device
    # brute force: no mesh with fewer ranks fits
    assert all(model.per_rank_bytes((512,) * 3, (n, 1, 1)) > 0.9 * device for n in range(1, ranks))
    assert ranks == 2 and mesh == (2, 1, 1)  # of the equal 2x1x1, 1x2x1, 1x1x2: D first


def _surface(shape, mesh):
    block = [n // m for n, m in zip(shape, mesh, strict=True)]
    return sum(block[(a + 1) % 3] * block[(a + 2) % 3] for a in range(3) if mesh[a] > 1)


def test_ranks_needed_prefers_the_least_halo_and_respects_the_multiple():
    model = MemoryModel(0.0, 1000.0)
    shape = (1024, 1024, 1024)
    ranks, mesh = ranks_needed(shape, model, 80 * GIB)
    assert ranks == 16
    splits = (1, 2, 4, 8, 16)
    meshes = [(a, b, ranks // (a * b)) for a in splits for b in splits if ranks % (a * b) == 0]
    assert _surface(shape, mesh) == min(_surface(shape, m) for m in meshes) < _surface(shape, (16, 1, 1))
    # 48 voxels along W with multiple 16: only 1 or 3 blocks there
    ranks, mesh = ranks_needed((16, 16, 48), MemoryModel(0.0, 1.0), 16 * 16 * 20 / 0.9)
    assert (ranks, mesh) == (3, (1, 1, 3))


def test_ranks_needed_says_none_when_nothing_fits():
    assert ranks_needed((64, 64, 64), MemoryModel(100 * GIB, 1.0), 80 * GIB) is None  # fixed cost too big
    assert ranks_needed((32, 32, 32), MemoryModel(0.0, 1e9), 80 * GIB) is None  # blocks cannot shrink enough

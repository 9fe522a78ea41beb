"""Mesh arithmetic (pure) and scattering / gathering a volume over gloo ranks."""

from __future__ import annotations

import pytest
import torch

from engines.partition.layout import format_mesh, parse_mesh
from engines.partition.mesh import SpatialMesh


@pytest.mark.parametrize(("text", "expected"), [
    ("2x2x1", ((2, 2, 1), 1)), ("1x1x4", ((1, 1, 4), 1)), ("2X1x1x3", ((2, 1, 1), 3)),
    ("2×2×2", ((2, 2, 2), 1))])
def test_parse_mesh(text, expected):
    assert parse_mesh(text) == expected
    assert parse_mesh(format_mesh(*expected)) == expected


@pytest.mark.parametrize("text", ["2x2", "2x0x1", "axbxc", "2x2x2x2x2", "-1x1x1", ""])
def test_parse_mesh_refuses_bad_text_quoting_it(text):
    with pytest.raises(ValueError, match="mesh must look like") as info:
        parse_mesh(text)
    assert repr(text) in str(info.value)


def test_ranks_coordinates_and_neighbours_follow_row_major_order():
    meshes = [SpatialMesh((2, 3, 2), data_parallel=2, rank=r) for r in range(24)]
    assert meshes[0].coords == (0, 0, 0) and meshes[1].coords == (0, 0, 1) and meshes[2].coords == (0, 1, 0)
    assert meshes[13].replica == 1 and meshes[13].coords == (0, 0, 1)
    assert meshes[13].neighbors(0) == (None, 13 + 6)  # next block along D is 6 ranks on, same replica
    assert meshes[13].neighbors(1) == (None, 15)
    assert meshes[13].neighbors(2) == (12, None)
    assert meshes[0].split_axes == (0, 1, 2) and SpatialMesh((1, 2, 1)).split_axes == (1,)


def test_blocks_tile_the_volume_exactly_once():
    shape = (8, 6, 4)
    cover = torch.zeros(shape, dtype=torch.int64)
    for rank in range(12):
        mesh = SpatialMesh((2, 3, 2), rank=rank)
        assert mesh.local_shape(shape) == (4, 2, 2)
        cover[mesh.block_slices(shape)] += 1
    assert bool((cover == 1).all())


def test_uneven_split_is_refused_naming_the_axis():
    with pytest.raises(ValueError, match=r"extent 7 along H .* 2 equal blocks"):
        SpatialMesh((1, 2, 1)).local_shape((8, 7, 8))


def test_bad_mesh_arguments_are_refused():
    with pytest.raises(ValueError, match="three positive"):
        SpatialMesh((2, 2))
    with pytest.raises(ValueError, match="outside mesh"):
        SpatialMesh((2, 1, 1), rank=2)


def scatter_gather_worker(mesh_shape, data_parallel):
    mesh = SpatialMesh(mesh_shape, data_parallel=data_parallel)
    volume = torch.arange(2 * 8 * 4 * 6, dtype=torch.float32).reshape(2, 8, 4, 6) + 1000 * mesh.replica
    block = mesh.scatter(volume if mesh.coords == (0, 0, 0) else None)
    whole = mesh.gather(block * 2)
    return torch.equal(block, mesh.block(volume)), None if whole is None else torch.equal(whole, volume * 2)


@pytest.mark.dist
@pytest.mark.parametrize(("n", "mesh_shape", "dp"), [(2, (1, 2, 1), 1), (4, (2, 1, 2), 1), (4, (1, 1, 2), 2)])
def test_scatter_then_gather_round_trips(ranks, n, mesh_shape, dp):
    results = ranks(n).run(scatter_gather_worker, mesh_shape, dp, timeout_s=120)
    assert all(block_ok for block_ok, _ in results)
    spatial = n // dp
    assert [whole_ok for _, whole_ok in results] == [True if r % spatial == 0 else None for r in range(n)]


def dtypes_worker():
    """Round trips in the types scans come in (gloo itself refuses int16 and uint16), and a block without
    three spatial axes refused on every rank (not only where it would be assembled)."""
    mesh = SpatialMesh((2, 1, 1))
    same = {}
    for dtype in (torch.int16, torch.uint16, torch.uint8, torch.bool, torch.float64):
        volume = (torch.arange(8 * 4 * 6).reshape(8, 4, 6) % 7 - 3).to(dtype)
        block = mesh.scatter(volume if mesh.rank == 0 else None)
        whole = mesh.gather(block)
        same[str(dtype)] = (block.dtype == dtype and torch.equal(block, mesh.block(volume))
                            and (whole is None or torch.equal(whole, volume)))
    refusals = []
    for call in (lambda: mesh.gather(torch.zeros(4, 6)),
                 lambda: mesh.scatter(torch.zeros(7) if mesh.rank == 0 else None)):
        try:
            call()
        except ValueError as exc:
            refusals.append(str(exc))
    return same, refusals


@pytest.mark.dist
def test_scatter_and_gather_move_any_dtype_and_refuse_blocks_without_three_axes_on_every_rank(ranks):
    for same, refusals in ranks(2).run(dtypes_worker, timeout_s=120):
        assert all(same.values()), same
        assert refusals == ["a volume or block needs three spatial axes (..., D, H, W); this one is (4, 6)",
                            "a volume or block needs three spatial axes (..., D, H, W); this one is (7,)"]

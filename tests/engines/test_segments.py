"""segment_statistics against a naive per-label loop and hand-computed volumes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import engines.segments as segments
from engines.errors import InputError
from engines.segments import SegmentStats, segment_statistics, voxel_volume_mm3


def _naive(labels, image, voxel_mm3):
    """One boolean mask per label: the obvious, slow reference."""
    out = {}
    for value in np.unique(labels):
        if value == 0:
            continue
        inside = labels == value
        values = image[inside].astype(np.float64)
        out[int(value)] = (int(inside.sum()), inside.sum() * voxel_mm3 / 1000, values.mean(), values.std())
    return out


def test_hand_computed_volumes_with_anisotropic_spacing():
    labels = np.zeros((4, 5, 6), dtype=np.uint8)
    labels[0, 0, :2] = 1  # 2 voxels
    labels[1:3, 1:4, 2:6] = 2  # 2*3*4 = 24 voxels
    image = np.zeros(labels.shape, dtype=np.int16)
    image[0, 0, 0], image[0, 0, 1] = 10, 30  # label 1: mean 20, SD 10
    image[labels == 2] = -1000
    affine = np.diag([0.5, 2.0, 3.0, 1.0])  # 3 mm³ per voxel
    affine[:3, 3] = [100, -50, 7]  # translation must not matter

    stats = segment_statistics(labels, image, affine=affine, names=["background", "lesion", "air"])

    assert stats == [
        SegmentStats(label=1, name="lesion", voxels=2, volume_ml=pytest.approx(0.006), mean=20.0, sd=10.0),
        SegmentStats(label=2, name="air", voxels=24, volume_ml=pytest.approx(0.072), mean=-1000.0, sd=0.0),
    ]


def test_voxel_volume_counts_rotation_shear_and_mirroring():
    rotation = Rotation.from_euler("zyx", [25, 10, -40], degrees=True).as_matrix()
    shear = np.array([[1.0, 0.3, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # volume-preserving
    mirror = np.diag([1.0, -1.0, 1.0])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ shear @ mirror @ np.diag([0.7, 1.2, 2.5])
    assert voxel_volume_mm3(affine) == pytest.approx(0.7 * 1.2 * 2.5)


def test_matches_a_naive_loop_across_slabs(monkeypatch):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, size=(23, 17, 11)).astype(np.int32)
    labels[5:9] = 0  # some slabs without a label at all
    image = rng.normal(300.0, 80.0, size=labels.shape).astype(np.float32) + 40 * labels
    affine = np.diag([0.9, 0.9, 3.0, 1.0])
    monkeypatch.setattr(segments, "_SLAB_VOXELS", 17 * 11 * 3)  # 3 planes per slab: 8 slabs to merge

    got = segment_statistics(labels, image, affine=affine)
    want = _naive(labels, image, 0.9 * 0.9 * 3.0)

    assert [s.label for s in got] == sorted(want)
    for s in got:
        voxels, ml, mean, sd = want[s.label]
        assert s.voxels == voxels
        assert s.volume_ml == pytest.approx(ml)
        assert s.mean == pytest.approx(mean, rel=1e-9)
        assert s.sd == pytest.approx(sd, rel=1e-9)
        assert s.name is None


def test_large_sparse_ids_and_no_image():
    labels = np.zeros((3, 4, 5), dtype=np.uint32)
    labels[0, 0, 0] = 4_000_000_000
    labels[2, 3, :] = 7
    stats = segment_statistics(labels, affine=np.eye(4), names={7: "seven"})
    assert [(s.label, s.voxels, s.name, s.mean, s.sd) for s in stats] == [
        (7, 5, "seven", None, None),
        (4_000_000_000, 1, None, None, None),
    ]


def test_mean_sd_stable_far_from_zero():
    # Sum-of-squares formulas lose all digits here; the pairwise update must not.
    labels = np.ones((4, 4, 4), dtype=np.uint8)
    image = 1e9 + np.arange(64, dtype=np.float64).reshape(4, 4, 4)
    (s,) = segment_statistics(labels, image, affine=np.eye(4))
    assert s.sd == pytest.approx(np.arange(64).std(), rel=1e-9)


def test_bad_inputs():
    labels = np.zeros((2, 2, 2), dtype=np.uint8)
    with pytest.raises(InputError, match="same voxel grid"):
        segment_statistics(labels, np.zeros((2, 2, 3)), affine=np.eye(4))
    with pytest.raises(InputError, match="integer"):
        segment_statistics(labels.astype(float), affine=np.eye(4))
    with pytest.raises(InputError, match="non-negative"):
        segment_statistics(labels.astype(np.int8) - 1, affine=np.eye(4))
    with pytest.raises(InputError, match="3D"):
        segment_statistics(labels[0], affine=np.eye(4))

"""Slice helpers of the interactive path: which pixels a slice holds and where its upsampled pixels lie."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engines.errors import InputError
from engines.superres.infer import bicubic, slice_volume, take_slice

torch.set_num_threads(1)

# oblique, permuted, anisotropic: voxel axes -> world (-A, +S, -R) rotated 12 degrees about S
_C, _S = np.cos(np.radians(12)), np.sin(np.radians(12))
AFFINE = np.eye(4)
AFFINE[:3, :3] = np.array([[_C, -_S, 0], [_S, _C, 0], [0, 0, 1]]) @ np.array(
    [[0, 0, -0.9], [-1.2, 0, 0], [0, 2.0, 0]])
AFFINE[:3, 3] = (12.0, -30.0, 8.0)


@pytest.mark.parametrize("axes", [(0, 1, 2), (1, 2, 0), (2, 1, 0), (1, 0, 2)])
def test_take_slice_has_rows_along_the_vertical_axis(axes):
    data = np.arange(5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7)
    plane = take_slice(data, axes, 3)
    normal, vert, horiz = axes
    assert plane.shape == (data.shape[vert], data.shape[horiz])
    index = [0, 0, 0]
    index[normal], index[vert], index[horiz] = 3, 2, 4
    assert plane[2, 4] == data[tuple(index)]


def test_take_slice_refuses_an_index_outside_the_volume():
    with pytest.raises(InputError, match="outside"):
        take_slice(np.zeros((4, 4, 4)), (2, 0, 1), 4)


@pytest.mark.parametrize("axes", [(1, 0, 2), (2, 1, 0), (0, 2, 1)])
def test_slice_volume_puts_input_pixel_centres_where_the_original_has_them(axes):
    normal, vert, horiz = axes
    shape = [8, 10, 12]
    index, sx, sy = 3, 2.0, 1.5
    h, w = shape[vert], shape[horiz]
    out2d = np.zeros((round(h * sy), round(w * sx)), np.float32)
    data, affine = slice_volume(out2d, AFFINE, axes, index, sx, sy)
    assert data.shape[normal] == 1 and data.shape[vert] == h * sy and data.shape[horiz] == w * sx
    # input pixel u along an axis of scale s sits at output index (u + 0.5) * s - 0.5
    for u_v, u_h in [(0, 0), (h - 1, w - 1), (2, 7)]:
        voxel = np.zeros(3)
        voxel[normal], voxel[vert], voxel[horiz] = index, u_v, u_h
        out_index = np.zeros(3)
        out_index[vert], out_index[horiz] = (u_v + 0.5) * sy - 0.5, (u_h + 0.5) * sx - 0.5
        np.testing.assert_allclose(affine @ np.r_[out_index, 1], AFFINE @ np.r_[voxel, 1], atol=1e-9)


def test_bicubic_passes_through_the_input_samples():
    # at x3 every third output pixel (1, 4, ...) is centred on an input pixel: an interpolating kernel
    # returns the sample there
    img = np.random.default_rng(0).random((7, 9)).astype(np.float32)
    out = bicubic(img, 3.0, 3.0)
    assert out.shape == (21, 27)
    np.testing.assert_allclose(out[1::3, 1::3], img, atol=1e-5)

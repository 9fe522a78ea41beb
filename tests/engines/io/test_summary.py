"""value_range and the info documents, compared with plain numpy on the whole array."""

from __future__ import annotations

import numpy as np
import pytest

from engines.cube import Cube
from engines.io.summary import describe_cube, describe_volume, value_range
from engines.volume import Volume

VOLUME_KEYS = ["kind", "shape", "dtype", "spacing_mm", "orientation", "affine", "modality", "min", "max",
               "warnings"]


@pytest.mark.parametrize("chunk_bytes", [1, 100, 10_000, 1 << 30])
def test_value_range_chunked_equals_numpy(tmp_path, chunk_bytes):
    data = np.random.default_rng(0).integers(-2000, 3000, size=(9, 8, 13)).astype(np.int16)
    mapped = np.memmap(tmp_path / "v.raw", dtype=np.int16, mode="w+", shape=data.shape)
    mapped[:] = data
    assert value_range(mapped, chunk_bytes=chunk_bytes) == (data.min(), data.max())


def test_value_range_ignores_nan_and_inf():
    data = np.full((4, 4, 6), np.nan, dtype=np.float32)
    data[1, 2, 4], data[0, 0, 1], data[3, 3, 3] = -3.5, 7.25, np.inf
    assert value_range(data, chunk_bytes=64) == (-3.5, 7.25)
    assert value_range(np.full((2, 2, 2), np.nan)) == (None, None)


def test_describe_volume_has_exactly_the_issue_keys():
    affine = np.diag([-0.5, -0.5, 2.0, 1.0])
    volume = Volume(data=np.arange(24, dtype=">i2").reshape(2, 3, 4) - 1024, affine=affine, modality="CT",
                    warnings=["a gap"])
    summary = describe_volume(volume)
    assert list(summary) == VOLUME_KEYS
    assert summary["kind"] == "volume"
    assert summary["shape"] == [2, 3, 4]
    assert summary["dtype"] == "int16"
    assert summary["spacing_mm"] == [0.5, 0.5, 2.0]
    assert summary["orientation"] == "LPS"
    assert summary["affine"] == affine.tolist()
    assert (summary["min"], summary["max"]) == (-1024, -1001)
    assert summary["warnings"] == ["a gap"]


def test_describe_cube():
    cube = Cube(data=np.zeros((5, 4, 3), np.float32), wavelengths_nm=np.array([400.0, 550.0, 700.0]),
                class_names=["water", "soil"])
    summary = describe_cube(cube)
    assert list(summary) == ["kind", "shape", "dtype", "bands", "wavelength_range_nm", "classes", "warnings"]
    assert summary["bands"] == 3 and summary["wavelength_range_nm"] == [400.0, 700.0]
    assert summary["classes"] == ["water", "soil"]

"""The cube entry points: which paths are cubes, explicit ground truth, label checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import tifffile

from engines.errors import InputError
from engines.io.cubes import check_labels, is_cube_path, read_cube, read_labels

CUBE = np.arange(5 * 4 * 3, dtype=np.float32).reshape(5, 4, 3)


def test_is_cube_path(tmp_path: Path) -> None:
    (tmp_path / "scan.nii.gz").write_bytes(b"\x1f\x8b")
    (tmp_path / "x.mat").write_bytes(b"")
    (tmp_path / "x.tif").write_bytes(b"")
    (tmp_path / "x.img").write_bytes(b"")
    assert not is_cube_path(tmp_path / "scan.nii.gz")
    assert not is_cube_path(tmp_path / "missing.hdr")
    assert not is_cube_path(tmp_path)
    assert not is_cube_path(tmp_path / "x.img")  # no header beside
    assert is_cube_path(tmp_path / "x.mat") and is_cube_path(tmp_path / "x.tif")


def test_explicit_ground_truth_overrides_the_one_beside(tmp_path: Path) -> None:
    scipy.io.savemat(tmp_path / "c.mat", {"c": CUBE})
    scipy.io.savemat(tmp_path / "c_gt.mat", {"c_gt": np.ones((5, 4), np.uint8)})
    other = np.full((5, 4), 2, np.uint8)
    tifffile.imwrite(tmp_path / "mine.tif", other)
    assert read_cube(tmp_path / "c.mat").labels.max() == 1
    cube = read_cube(tmp_path / "c.mat", gt=tmp_path / "mine.tif")
    np.testing.assert_array_equal(cube.labels, other)
    assert cube.class_names == ["Class 1", "Class 2"]
    assert cube.meta["ground_truth"] == str(tmp_path / "mine.tif")


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_cube(tmp_path / "nothing.hdr")
    with pytest.raises(InputError, match="ground-truth file not found"):
        read_labels(tmp_path / "nothing_gt.mat")
    with pytest.raises(InputError, match="this is a folder, not a ground-truth file"):
        read_labels(tmp_path)


@pytest.mark.parametrize(("labels", "message"), [
    (np.zeros((2, 2, 2)), "2-D"),
    (np.array([[0, -1]]), "whole numbers >= 0"),
    (np.array([[0.5, 1.0]]), "whole numbers >= 0"),
    (np.array([["a", "b"]]), "must hold numbers"),
])
def test_bad_labels(labels: np.ndarray, message: str) -> None:
    with pytest.raises(InputError, match=message):
        check_labels(labels, "gt.mat")


def test_float_labels_with_whole_values_are_accepted() -> None:
    out = check_labels(np.array([[0.0, 3.0]]), "gt.mat")
    assert out.dtype == np.int32 and out.tolist() == [[0, 3]]

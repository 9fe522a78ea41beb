"""WHU-Hi .mat cubes: MATLAB v5 (scipy) and v7.3 (HDF5, written here in MATLAB's own layout)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from engines.errors import InputError
from engines.hyperspectral.protocol import make_split
from engines.io.cube_whuhi import WHU_HI_CLASSES, mat_version
from engines.io.cubes import is_cube_path, read_cube, read_labels

RNG = np.random.default_rng(3)
H, W, B = 8, 6, 270
CUBE = RNG.normal(0.3, 0.1, size=(H, W, B)).astype(np.float32)
GT = RNG.integers(0, 10, size=(H, W)).astype(np.uint8)


def write_mat73(path: Path, variables: dict[str, np.ndarray], *, compress: bool = False) -> None:
    """A MATLAB v7.3 file as MATLAB writes it: 512-byte user block with MATLAB's text header, arrays
    stored column-major (so HDF5 sees their axes reversed), a MATLAB_class attribute on each."""
    classes = {np.dtype(np.float64): "double", np.dtype(np.float32): "single", np.dtype(np.uint8): "uint8",
               np.dtype(np.uint16): "uint16", np.dtype(np.int16): "int16"}
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, arr in variables.items():
            ds = f.create_dataset(name, data=np.ascontiguousarray(arr.T),
                                  **({"compression": "gzip", "chunks": True} if compress else {}))
            ds.attrs["MATLAB_class"] = np.bytes_(classes[arr.dtype])
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    with open(path, "r+b") as f:
        f.write(text.ljust(116, b" ") + bytes(8) + b"\x00\x02" + b"IM")


def test_v5_longkou_with_ground_truth(tmp_path: Path) -> None:
    scipy.io.savemat(tmp_path / "WHU_Hi_LongKou.mat", {"WHU_Hi_LongKou": CUBE})
    scipy.io.savemat(tmp_path / "WHU_Hi_LongKou_gt.mat", {"WHU_Hi_LongKou_gt": GT})
    assert is_cube_path(tmp_path / "WHU_Hi_LongKou.mat")
    cube = read_cube(tmp_path / "WHU_Hi_LongKou.mat")
    assert cube.meta["format"] == "MATLAB v5" and cube.meta["scene"] == "LongKou"
    np.testing.assert_array_equal(cube.data, CUBE)
    np.testing.assert_array_equal(cube.labels, GT)
    assert cube.class_names == list(WHU_HI_CLASSES["LongKou"]) and len(cube.class_names) == 9
    np.testing.assert_allclose(cube.wavelengths_nm[[0, -1]], [400, 1000])
    np.testing.assert_allclose(np.diff(cube.wavelengths_nm), 600 / 269)
    assert any("assumed" in w and "400-1000 nm" in w for w in cube.warnings)


@pytest.mark.parametrize("compress", [False, True])
def test_v73_honghu_is_transposed_back(tmp_path: Path, compress: bool) -> None:
    gt = RNG.integers(0, 23, size=(H, W)).astype(np.uint8)
    write_mat73(tmp_path / "WHU_Hi_HongHu.mat", {"WHU_Hi_HongHu": CUBE.astype(np.float64)}, compress=compress)
    write_mat73(tmp_path / "WHU_Hi_HongHu_gt.mat", {"WHU_Hi_HongHu_gt": gt})
    assert mat_version(tmp_path / "WHU_Hi_HongHu.mat") == "v7.3"
    cube = read_cube(tmp_path / "WHU_Hi_HongHu.mat")
    assert cube.shape == (H, W, B)
    np.testing.assert_array_equal(np.asarray(cube.data), CUBE.astype(np.float64))
    np.testing.assert_array_equal(cube.labels, gt)
    assert cube.meta["lazy"] is (not compress)  # contiguous arrays are memory-mapped
    assert len(cube.class_names) == 22 and cube.class_names[15] == "Film covered lettuce"


def test_v73_without_matlab_text_header(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "WHU_Hi_HanChuan.mat", "w") as f:
        f["WHU_Hi_HanChuan"] = np.ascontiguousarray(CUBE.T)
    cube = read_cube(tmp_path / "WHU_Hi_HanChuan.mat")
    np.testing.assert_array_equal(np.asarray(cube.data), CUBE)
    assert cube.meta["scene"] == "HanChuan"
    # written by h5py, not MATLAB: whether it was transposed cannot be known, and the warning says how it
    # was read (one written by MATLAB has no such warning: test_v73_honghu_is_transposed_back)
    (note,) = [w for w in cube.warnings if "MATLAB_class" in w]
    assert f"rows x columns x bands = {H} x {W} x {B}" in note


def test_a_matlab_written_v73_cube_has_no_axis_warning(tmp_path: Path) -> None:
    write_mat73(tmp_path / "WHU_Hi_HongHu.mat", {"WHU_Hi_HongHu": CUBE.astype(np.float64)})
    assert not [w for w in read_cube(tmp_path / "WHU_Hi_HongHu.mat").warnings if "MATLAB_class" in w]


def test_split_files_are_found_and_read(tmp_path: Path) -> None:
    scipy.io.savemat(tmp_path / "WHU_Hi_LongKou.mat", {"WHU_Hi_LongKou": CUBE})
    scipy.io.savemat(tmp_path / "WHU_Hi_LongKou_gt.mat", {"WHU_Hi_LongKou_gt": GT})
    folder = tmp_path / "Training samples and test samples"
    folder.mkdir()
    train = np.where(RNG.random((H, W)) < 0.3, GT, 0).astype(np.uint8)
    test = np.where(train == 0, GT, 0).astype(np.uint8)
    scipy.io.savemat(folder / "Train25.mat", {"LKtrain25": train})
    scipy.io.savemat(folder / "Test25.mat", {"LKtest25": test})
    write_mat73(folder / "Train100.mat", {"HHCYtrain100": train})
    cube = read_cube(tmp_path / "WHU_Hi_LongKou.mat")
    assert sorted(cube.meta["splits"]) == [25, 100]
    assert set(cube.meta["splits"][25]) == {"train", "test"}
    np.testing.assert_array_equal(read_labels(cube.meta["splits"][25]["train"])[0], train)
    np.testing.assert_array_equal(read_labels(cube.meta["splits"][100]["train"])[0], train)
    split = make_split(cube.labels, train_file=folder / "Train25.mat", test_file=folder / "Test25.mat")
    np.testing.assert_array_equal(split.train, train)
    np.testing.assert_array_equal(split.test, test)


def test_split_file_keys_of_each_scene(tmp_path: Path) -> None:
    lab = np.arange(H * W, dtype=np.uint8).reshape(H, W) % 5
    for key in ("Train50", "LKtrain50", "HHCYtrain50", "HCtrain50"):
        scipy.io.savemat(tmp_path / "Train50.mat", {key: lab, "other": np.zeros((2, 2))})
        np.testing.assert_array_equal(read_labels(tmp_path / "Train50.mat")[0], lab)


def test_optional_variables(tmp_path: Path) -> None:
    wl = np.linspace(410, 990, B)
    extras = {"wavelengths_nm": wl, "reflectance_scale_factor": 1e4, "description": "SYNTHETIC test"}
    scipy.io.savemat(tmp_path / "scene.mat", {"scene": CUBE, **extras})
    scipy.io.savemat(tmp_path / "scene_gt.mat", {"scene_gt": GT, "class_names": np.array(list("abcdefghi"),
                                                                                          dtype=object)})
    cube = read_cube(tmp_path / "scene.mat")
    np.testing.assert_allclose(cube.wavelengths_nm, wl)
    assert cube.warnings == [] and cube.meta["description"] == "SYNTHETIC test"
    assert cube.meta["reflectance_scale_factor"] == 1e4
    assert cube.class_names == list("abcdefghi")


def test_no_recognisable_cube_lists_the_keys(tmp_path: Path) -> None:
    scipy.io.savemat(tmp_path / "x.mat", {"foo": np.zeros((3, 4)), "bar": np.zeros((2, 2, 2, 2))})
    with pytest.raises(InputError, match=r"no recognisable cube.*foo 3x4 double.*bar 2x2x2x2 double"):
        read_cube(tmp_path / "x.mat")
    scipy.io.savemat(tmp_path / "two.mat", {"a": CUBE, "b": CUBE})
    with pytest.raises(InputError, match="several found"):
        read_cube(tmp_path / "two.mat")


def test_ground_truth_file_opened_as_a_cube(tmp_path: Path) -> None:
    scipy.io.savemat(tmp_path / "WHU_Hi_LongKou_gt.mat", {"WHU_Hi_LongKou_gt": GT})
    with pytest.raises(InputError, match="ground truth or a split file"):
        read_cube(tmp_path / "WHU_Hi_LongKou_gt.mat")


@pytest.mark.parametrize("version", ["v5", "v7.3"])
def test_ground_truth_kept_in_the_cubes_own_file(tmp_path: Path, version: str) -> None:
    """{"data": cube, "gt": labels} in one file: the labels are found; a _gt.mat beside wins over them."""
    if version == "v5":
        scipy.io.savemat(tmp_path / "scene.mat", {"data": CUBE, "gt": GT})
    else:
        write_mat73(tmp_path / "scene.mat", {"data": CUBE, "gt": GT})
    cube = read_cube(tmp_path / "scene.mat")
    np.testing.assert_array_equal(cube.labels, GT)
    assert cube.meta["labels_variable"] == "gt" and len(cube.class_names) == GT.max()
    other = (GT + 1) % 10
    scipy.io.savemat(tmp_path / "scene_gt.mat", {"scene_gt": other})
    np.testing.assert_array_equal(read_cube(tmp_path / "scene.mat").labels, other)


def test_a_2d_array_that_is_not_labels_is_left_alone(tmp_path: Path) -> None:
    scipy.io.savemat(tmp_path / "scene.mat", {"data": CUBE, "mean_band": CUBE.mean(axis=2)})
    assert read_cube(tmp_path / "scene.mat").labels is None


def test_ground_truth_of_another_shape(tmp_path: Path) -> None:
    scipy.io.savemat(tmp_path / "WHU_Hi_LongKou.mat", {"WHU_Hi_LongKou": CUBE})
    scipy.io.savemat(tmp_path / "WHU_Hi_LongKou_gt.mat", {"WHU_Hi_LongKou_gt": GT[:, :-1]})
    with pytest.raises(InputError, match=r"ground truth has shape 8x5 but the cube is 8x6"):
        read_cube(tmp_path / "WHU_Hi_LongKou.mat")


def test_wavelengths_variable_out_of_order_is_read_with_a_warning(tmp_path: Path) -> None:
    wl = np.linspace(400, 1000, B)
    wl[10] = wl[12]
    scipy.io.savemat(tmp_path / "s.mat", {"s": CUBE, "wavelengths_nm": wl})
    cube = read_cube(tmp_path / "s.mat")
    np.testing.assert_array_equal(cube.wavelengths_nm, wl)
    assert any("band 11 is" in w and "do not increase" in w for w in cube.warnings)


def test_not_a_mat_file(tmp_path: Path) -> None:
    (tmp_path / "junk.mat").write_bytes(b"not matlab at all" * 20)
    with pytest.raises(InputError, match=r"not a MATLAB \.mat file"):
        read_cube(tmp_path / "junk.mat")


@pytest.mark.parametrize("text", [b"not matlab at all" * 20, b"hello world\n" * 40])
def test_text_named_mat_is_refused(tmp_path: Path, text: bytes) -> None:
    (tmp_path / "junk.mat").write_bytes(text)  # the second makes scipy's version check fail differently
    with pytest.raises(InputError, match=r"not a MATLAB \.mat file"):
        read_cube(tmp_path / "junk.mat")


@pytest.mark.parametrize("keep", [0.8, 0.3], ids=["data cut", "metadata cut"])
def test_truncated_v73_is_named(tmp_path: Path, keep: float) -> None:
    path = tmp_path / "WHU_Hi_HanChuan.mat"
    write_mat73(path, {"WHU_Hi_HanChuan": CUBE}, compress=True)
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])
    with pytest.raises(InputError) as info:
        np.asarray(read_cube(path).data)
    assert info.value.path == str(path)


def test_ground_truth_given_overrides_a_mismatched_one_beside(tmp_path: Path) -> None:
    scipy.io.savemat(tmp_path / "scene.mat", {"scene": CUBE})
    scipy.io.savemat(tmp_path / "scene_gt.mat", {"scene_gt": GT[:3, :3]})  # not this cube's
    scipy.io.savemat(tmp_path / "truth.mat", {"truth": GT})
    cube = read_cube(tmp_path / "scene.mat", gt=tmp_path / "truth.mat")
    np.testing.assert_array_equal(cube.labels, GT)
    assert cube.meta["ground_truth"] == str(tmp_path / "truth.mat")

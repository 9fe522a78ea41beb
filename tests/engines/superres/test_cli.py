"""`sr` and `sr-bench` from the command line: geometry of the written file, bad input, the JSON contract."""

from __future__ import annotations

import json
import re

import nibabel as nib
import numpy as np
import pytest
import torch
from skimage import io as skio
from skimage.transform import resize

import main
from engines.errors import InputError
from engines.superres.infer import super_resolve

torch.set_num_threads(1)

# Voxel axes (0, 1, 2) point to world (-A, +S, -R), i.e. a "PSL" volume, spacings 1.2 / 2.0 / 0.9 mm, then
# rotated 12 degrees about S: an oblique, non-RAS volume where no voxel axis is the RAS one of its number.
_C, _S = np.cos(np.radians(12)), np.sin(np.radians(12))
_ROT = np.array([[_C, -_S, 0], [_S, _C, 0], [0, 0, 1]])
_AXES = np.array([[0, 0, -0.9], [-1.2, 0, 0], [0, 2.0, 0]])  # columns: world vector of voxel axes 0, 1, 2
AFFINE = np.eye(4)
AFFINE[:3, :3] = _ROT @ _AXES
AFFINE[:3, 3] = (12.0, -30.0, 8.0)
SPACING = np.array([1.2, 2.0, 0.9])
# For this affine, plane -> (normal, vertical, horizontal) voxel axes, worked out by hand from _AXES:
# axial = slices along S (axis 1), A up (axis 0), R across (axis 2); coronal: normal A (0), S up (1), R (2);
# sagittal: normal R (2), S up (1), A across (0).
PLANE_VOXEL_AXES = {"axial": (1, 0, 2), "coronal": (0, 1, 2), "sagittal": (2, 1, 0)}
SHAPE = (24, 14, 22)


def _blob_volume() -> np.ndarray:
    """A smooth off-centre blob (so its world centroid is well defined) on a faint background."""
    i, j, k = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in SHAPE], indexing="ij")
    blob = np.exp(-(((i - 9.3) / 3.0) ** 2 + ((j - 7.6) / 2.0) ** 2 + ((k - 13.2) / 3.5) ** 2))
    return (100 + 900 * blob).astype(np.float32)


def _world_centroid(data: np.ndarray, affine: np.ndarray) -> np.ndarray:
    weights = np.clip(data - 100.0, 0, None)
    index = np.stack(np.meshgrid(*[np.arange(n) for n in data.shape], indexing="ij"), -1).reshape(-1, 3)
    centre = (index * weights.reshape(-1, 1)).sum(0) / weights.sum()
    return affine[:3, :3] @ centre + affine[:3, 3]


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main.run_command(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def oblique_nifti(tmp_path):
    path = tmp_path / "oblique_psl.nii.gz"
    nib.save(nib.Nifti1Image(_blob_volume(), AFFINE), path)
    return path


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_sr_writes_spacing_and_affine_of_the_plane_on_an_oblique_non_ras_volume(
    plane, oblique_nifti, tmp_path, capsys
):
    out = tmp_path / f"sr_{plane}.nii.gz"
    sx, sy = 2.0, 1.5
    code, stdout, err = _run(capsys, "sr", str(oblique_nifti), "--scale", str(sx), "--scale-y", str(sy),
                             "--plane", plane, "--out", str(out), "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    _, vert, horiz = PLANE_VOXEL_AXES[plane]
    scales = np.ones(3)
    scales[vert], scales[horiz] = sy, sx
    img = nib.load(out)
    expected_shape = tuple(int(np.floor(n * s + 0.5)) for n, s in zip(SHAPE, scales, strict=True))
    assert img.shape == expected_shape and summary["shape_out"] == list(expected_shape)
    spacing = np.linalg.norm(img.affine[:3, :3], axis=0)
    np.testing.assert_allclose(spacing, SPACING / scales, rtol=1e-5)
    np.testing.assert_allclose(summary["spacing_out"], SPACING / scales, rtol=1e-4)
    # Voxel axes keep their directions (same orientation, same obliquity); the file's qform agrees.
    np.testing.assert_allclose(img.affine[:3, :3] * scales, AFFINE[:3, :3], atol=1e-5)
    np.testing.assert_allclose(img.get_qform(), img.affine, atol=1e-4)
    # Same field of view: the outer edges of the first and last voxels coincide in world mm.
    for corner_in, corner_out in (([-0.5] * 3, [-0.5] * 3),
                                  (np.array(SHAPE) - 0.5, np.array(expected_shape) - 0.5)):
        np.testing.assert_allclose(img.affine @ np.r_[corner_out, 1], AFFINE @ np.r_[corner_in, 1], atol=1e-4)
    # The anatomy stays put: the blob's world centroid moves by well under a voxel.
    moved = _world_centroid(img.get_fdata(), img.affine) - _world_centroid(_blob_volume(), AFFINE)
    assert np.linalg.norm(moved) < 0.25 * SPACING.min(), moved


def test_sr_png_to_png_and_to_nifti_with_the_pixel_spacing(tmp_path, capsys):
    yy, xx = np.mgrid[0:20, 0:30]
    grey = (127 + 100 * np.sin(xx / 3.0) * np.cos(yy / 4.0)).astype(np.uint8)
    src = tmp_path / "slice.png"
    skio.imsave(src, grey, check_contrast=False)
    out_png, out_nii = tmp_path / "slice_sr.png", tmp_path / "slice_sr.nii.gz"
    code, _, err = _run(capsys, "sr", str(src), "--scale", "2.5", "--out", str(out_png))
    assert code == 0, err
    result = skio.imread(out_png)
    assert result.shape == (50, 75) and result.dtype == np.uint8
    # Averaged back onto the input grid, the super-resolved image is the input (to a few grey levels).
    back = resize(result.astype(float), grey.shape, order=1, anti_aliasing=True, preserve_range=True)
    assert np.abs(back - grey).mean() < 8
    code, stdout, err = _run(capsys, "sr", str(src), "--scale", "2.5", "--scale-y", "2",
                             "--out", str(out_nii), "--json")
    assert code == 0, err
    img = nib.load(out_nii)
    assert img.shape == (40, 75, 1)
    np.testing.assert_allclose(np.linalg.norm(img.affine[:3, :3], axis=0), [0.5, 0.4, 1.0], rtol=1e-6)
    assert json.loads(stdout)["plane"] == "image"


def test_rgb_png_is_converted_to_grey_with_a_warning(tmp_path, capsys):
    rgb = np.zeros((16, 18, 3), np.uint8)
    rgb[4:12, 5:13] = (200, 40, 90)
    src = tmp_path / "colour.png"
    skio.imsave(src, rgb, check_contrast=False)
    code, stdout, err = _run(capsys, "sr", str(src), "--scale", "2", "--out", str(tmp_path / "o.nii.gz"),
                             "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["shape_out"] == [32, 36, 1]
    assert any("RGB" in w for w in summary["warnings"])


@pytest.mark.parametrize("damage", ["empty", "broken", "truncated"])
def test_a_damaged_png_is_named_with_exit_2(tmp_path, capsys, damage):
    src = tmp_path / "slice.png"
    skio.imsave(src, np.arange(64 * 64, dtype=np.uint16).reshape(64, 64), check_contrast=False)
    data = src.read_bytes()
    src.write_bytes({"empty": b"", "broken": data[:16] + bytes(64) + data[80:],
                     "truncated": data[: len(data) // 2]}[damage])
    code, _, err = _run(capsys, "sr", str(src), "--scale", "2", "--out", str(tmp_path / "o.png"))
    assert code == 2 and f"{src}: cannot read the image" in err and "Traceback" not in err


def test_an_rgb_array_is_refused_by_the_slice_function_with_a_message():
    with pytest.raises(InputError, match="RGB"):
        super_resolve(np.zeros((8, 8, 3), np.float32), 2, 2)


@pytest.mark.parametrize("scale", ["0.5", "4.5", "nan", "1"])
def test_scale_outside_1_to_4_exits_2_with_a_message(scale, oblique_nifti, tmp_path, capsys):
    out = tmp_path / "x.nii.gz"
    code, _, err = _run(capsys, "sr", str(oblique_nifti), "--scale", scale, "--out", str(out))
    assert code == 2
    assert "(1, 4]" in err and "Traceback" not in err
    assert not out.exists()


def test_nans_are_reported_naming_the_file_and_can_be_filled(tmp_path, capsys):
    data = _blob_volume()
    data[3, 4, 5] = np.nan
    path = tmp_path / "with_nan.nii.gz"
    nib.save(nib.Nifti1Image(data, AFFINE), path)
    out = tmp_path / "o.nii.gz"
    code, _, err = _run(capsys, "sr", str(path), "--scale", "2", "--out", str(out))
    assert code == 2 and "NaN" in err and str(path) in err and "--nan-fill" in err
    assert not out.exists()
    code, stdout, err = _run(capsys, "sr", str(path), "--scale", "2", "--nan-fill", "0", "--out", str(out),
                             "--json")
    assert code == 0, err
    assert np.isfinite(nib.load(out).get_fdata()).all()
    assert any("NaN" in w for w in json.loads(stdout)["warnings"])


def test_one_pixel_wide_slices_exit_2_naming_the_file(tmp_path, capsys):
    path = tmp_path / "thin.png"
    skio.imsave(path, np.arange(20, dtype=np.uint8)[None] * 10, check_contrast=False)
    code, _, err = _run(capsys, "sr", str(path), "--scale", "2", "--out", str(tmp_path / "o.png"))
    assert code == 2 and "1x20 pixels" in err and str(path) in err


@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (1, 1)])
def test_empty_and_single_pixel_slices_raise_input_error(shape):
    with pytest.raises(InputError, match=r"empty|pixels"):
        super_resolve(np.zeros(shape, np.float32), 2, 2)


def test_a_constant_image_is_refused_naming_the_file(tmp_path, capsys):
    path = tmp_path / "flat.png"
    skio.imsave(path, np.full((12, 12), 7, np.uint8), check_contrast=False)
    code, _, err = _run(capsys, "sr", str(path), "--scale", "2", "--out", str(tmp_path / "o.png"))
    assert code == 2 and "constant" in err and str(path) in err


def test_missing_input_exits_2(tmp_path, capsys):
    missing = tmp_path / "nope.nii.gz"
    code, _, err = _run(capsys, "sr", str(missing), "--scale", "2", "--out", str(tmp_path / "o.nii.gz"))
    assert code == 2 and str(missing) in err


@pytest.mark.slow
def test_sr_bench_quick_json_has_the_contract_keys(capsys):
    code, stdout, err = _run(capsys, "sr-bench", "--quick", "--json", "--scales", "2", "4")
    assert code == 0, err
    result = json.loads(stdout)
    assert {"params", "scales", "ms_per_slice_x2"} <= set(result)
    assert isinstance(result["params"], int) and result["params"] > 0
    assert result["ms_per_slice_x2"] > 0
    assert [r["scale"] for r in result["scales"]] == [2.0, 4.0]
    for row in result["scales"]:
        for key in ("psnr", "ssim", "psnr_bicubic", "ssim_bicubic", "psnr_gan", "ssim_gan"):
            assert isinstance(row[key], float), key
        assert 10 < row["psnr_bicubic"] < 60 and 0 < row["ssim_bicubic"] <= 1
        # bicubic beats nearest at every scale: the metrics are computed on real, aligned pairs
        assert row["psnr_bicubic"] > row["psnr_nearest"]


def test_sr_progress_prints_json_lines_events_for_the_job_runner(oblique_nifti, tmp_path, capsys):
    out = tmp_path / "o.nii.gz"
    code, stdout, err = _run(capsys, "sr", str(oblique_nifti), "--scale", "2", "--plane", "coronal",
                             "--out", str(out), "--progress")
    assert code == 0, err
    events = [json.loads(line) for line in stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    progress = [e for e in events if e["event"] == "progress"]
    assert [e["step"] for e in progress] == list(range(1, SHAPE[0] + 1))  # coronal: slices along axis 0
    assert events[-1]["outputs"] == [str(out)] and out.exists()


@pytest.mark.parametrize(("name", "message"), [("x.nrrd", r"\.nii"), ("missing/x.nii.gz", "does not exist"),
                                               ("x.png", "PNG output is for a 2D image")])
def test_an_output_that_cannot_be_written_is_refused_before_any_slice(name, message, oblique_nifti,
                                                                      tmp_path, capsys):
    code, stdout, err = _run(capsys, "sr", str(oblique_nifti), "--scale", "2", "--out", str(tmp_path / name),
                             "--progress")
    assert code == 2 and re.search(message, err) and str(tmp_path / name) in err
    assert '"progress"' not in stdout  # refused before the work, not after it


@pytest.mark.parametrize("spelling", ["same", "dotdot", "symlink"])
def test_sr_refuses_to_write_over_its_input(spelling, oblique_nifti, tmp_path, capsys):
    before = oblique_nifti.read_bytes()
    out = {"same": oblique_nifti, "dotdot": tmp_path / "sub" / ".." / oblique_nifti.name,
           "symlink": tmp_path / "link.nii.gz"}[spelling]
    (tmp_path / "sub").mkdir()
    if spelling == "symlink":
        out.symlink_to(oblique_nifti)
    code, _, err = _run(capsys, "sr", str(oblique_nifti), "--scale", "2", "--out", str(out))
    assert code == 2
    assert str(oblique_nifti) in err and "overwrite" in err
    assert oblique_nifti.read_bytes() == before


@pytest.mark.parametrize("inside", [False, True])
def test_sr_train_adapt_refuses_an_output_that_is_or_holds_its_scan(inside, oblique_nifti, tmp_path, capsys):
    scan = oblique_nifti
    if inside:  # the scan sits in the folder the run writes its weights and checkpoint into
        (tmp_path / "run").mkdir()
        scan = tmp_path / "run" / "scan.nii.gz"
        scan.write_bytes(oblique_nifti.read_bytes())
    out = tmp_path / "run" if inside else scan
    before = scan.read_bytes()
    code, _, err = _run(capsys, "sr-train", "--adapt", str(scan), "--out", str(out), "--steps-l1", "1")
    assert code == 2
    assert str(scan) in err
    assert scan.read_bytes() == before
    assert [p.name for p in scan.parent.iterdir()] == [scan.name]  # nothing written beside it

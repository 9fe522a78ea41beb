"""`python main.py info` as a user runs it (a subprocess): JSON keys, values, exit codes, messages."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

import main
from tests.engines.io.conftest import MNI152_FILES
from tests.engines.io.dicom_factory import SeriesSpec, ramp_values, write_series

ROOT = Path(main.__file__).resolve().parent
KEYS = ["kind", "shape", "dtype", "spacing_mm", "orientation", "affine", "modality", "min", "max", "warnings"]


def _info(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), "info", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def test_json_of_mni152_t1():
    path = next(p for p in MNI152_FILES if "_t1_" in p.name)
    result = _info(str(path), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert list(summary) == KEYS
    img = nib.load(path)
    data = np.asarray(img.dataobj)
    assert summary["kind"] == "volume"
    assert summary["shape"] == [197, 233, 189]
    assert summary["dtype"] == str(data.dtype)
    assert summary["orientation"] == "RAS"
    np.testing.assert_allclose(summary["affine"], img.affine, atol=1e-6)
    np.testing.assert_allclose(summary["spacing_mm"], img.header.get_zooms()[:3])
    assert (summary["min"], summary["max"]) == (data.min(), data.max())
    assert summary["modality"] is None and summary["warnings"] == []


def test_json_of_ct_slice_is_in_hounsfield_units():
    path = get_testdata_file("CT_small.dcm")
    summary = json.loads(_info(path, "--json").stdout)
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
    assert (summary["min"], summary["max"]) == (hu.min(), hu.max())
    assert summary["modality"] == "CT"
    assert summary["orientation"] == "LPS"


def test_dicom_folder_gap_warning_and_refusal(tmp_path):
    folder = tmp_path / "series"
    write_series(folder, SeriesSpec(ramp_values((6, 5, 7))), skip=(3,))
    summary = json.loads(_info(str(folder), "--json").stdout)
    assert summary["shape"] == [6, 5, 7]
    assert "missing slice" in summary["warnings"][0]

    human = _info(str(folder))
    assert human.returncode == 0
    assert "missing slice" in human.stdout and str(folder) in human.stdout

    refused = _info(str(folder), "--refuse-gaps")
    assert refused.returncode == 2
    assert str(folder) in refused.stderr and "missing slice" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_folder_with_two_series_lists_them_and_series_chooses(tmp_path):
    big, small = SeriesSpec(ramp_values((6, 5, 4)), description="big"), SeriesSpec(
        ramp_values((6, 5, 2)), description="small")
    write_series(tmp_path, big, prefix="B")
    write_series(tmp_path, small, prefix="S")
    human = _info(str(tmp_path))
    assert human.returncode == 0
    assert big.series_uid in human.stdout and small.series_uid in human.stdout
    chosen = json.loads(_info(str(tmp_path), "--series", small.series_uid, "--json").stdout)
    assert chosen["shape"] == [6, 5, 2]


def test_paths_are_printed_as_given(tmp_path):
    nib.Nifti1Image(np.zeros((3, 4, 5), np.float32), np.eye(4)).to_filename(tmp_path / "tiny.nii")
    result = _info("tiny.nii", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == "tiny.nii"


def _bad_inputs(tmp: Path) -> dict[str, tuple[Path, str]]:
    full = tmp / "full.nii.gz"
    noise = np.random.default_rng(0).normal(size=(40, 40, 30)).astype(np.float32)
    nib.Nifti1Image(noise, np.eye(4)).to_filename(full)
    (tmp / "truncated.nii.gz").write_bytes(full.read_bytes()[:20_000])
    zero = nib.Nifti1Image(np.ones((3, 3, 3), np.int16), None)
    zero.header["pixdim"][1:4] = 0
    zero.to_filename(tmp / "zero_pixdim.nii")
    (tmp / "empty_folder").mkdir()
    (tmp / "notes.dcm").write_text("just text")
    (tmp / "picture.png").write_bytes(b"\x89PNG")
    (tmp / "text.nii.gz").write_bytes(gzip.compress(b"no header"))
    return {
        "missing": (tmp / "missing.nii", "no such file"),
        "unsupported": (tmp / "picture.png", "unsupported file type"),
        "truncated": (tmp / "truncated.nii.gz", "truncated"),
        "zero-pixdim": (tmp / "zero_pixdim.nii", "pixdim"),
        "no-dicom": (tmp / "empty_folder", "no DICOM images"),
        "not-dicom": (tmp / "notes.dcm", "not a DICOM file"),
        "not-an-image": (tmp / "text.nii.gz", "not a readable NIfTI"),
    }


@pytest.mark.parametrize(
    "case", ["missing", "unsupported", "truncated", "zero-pixdim", "no-dicom", "not-dicom", "not-an-image"]
)
def test_bad_input_exits_2_naming_the_file(tmp_path, capsys, case):
    """In-process through main.main (the same path as the process; one real process is checked below)."""
    path, problem = _bad_inputs(tmp_path)[case]
    assert main.main(["info", str(path), "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert str(path) in err and problem in err
    assert "Traceback" not in err


def test_bad_input_in_a_real_process(tmp_path):
    path, problem = _bad_inputs(tmp_path)["truncated"]
    result = _info(str(path), "--json")
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith(f"tessera: {path}: ")
    assert problem in result.stderr and "Traceback" not in result.stderr


def test_cube_path_is_described_as_a_cube(tmp_path):
    pytest.importorskip("engines.io.cubes")
    spectral_envi = pytest.importorskip("spectral.io.envi")
    data = np.random.default_rng(0).random((6, 5, 4)).astype(np.float32)
    header = tmp_path / "scene.hdr"
    spectral_envi.save_image(str(header), data, metadata={"wavelength": [450, 550, 650, 750],
                                                          "wavelength units": "nm"})
    result = _info(str(header), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert list(summary) == ["kind", "shape", "dtype", "bands", "wavelength_range_nm", "classes", "warnings"]
    assert summary["kind"] == "cube" and summary["shape"] == [6, 5, 4] and summary["bands"] == 4
    assert summary["wavelength_range_nm"] == [450.0, 750.0]

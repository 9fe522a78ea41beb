"""The npe2 manifest, reader and sample-data hooks that plain `napari` uses."""

from __future__ import annotations

import importlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import scipy.io
from napari.layers import Layer
from npe2 import PluginManager, PluginManifest
from spectral.io import envi

import app
from app import plugin
from app.demo import T1_NAME, TISSUE_NAME
from engines.datasets.farmland import write_demo_scene
from engines.datasets.pydicom_samples import CT_SMALL_NAME
from engines.io import VOLUME_EXTENSIONS
from engines.io.cubes import read_cube
from tests.engines.io.dicom_factory import SeriesSpec, write_series
from widgets.workbench import DOCKS

MANIFEST = Path(app.__file__).with_name("napari.yaml")


def _nifti(path: Path) -> np.ndarray:
    data = np.random.default_rng(0).integers(0, 500, (6, 7, 8)).astype(np.int16)
    affine = np.array([[-1.5, 0, 0, 20.0], [0, 1.5, 0, -10.0], [0, 0, 2.0, 5.0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(data, affine), path)
    return affine


def test_manifest_is_valid_and_every_command_imports():
    manifest = PluginManifest.from_file(MANIFEST)
    assert manifest.name == "tessera"
    for command in manifest.contributions.commands:
        module, attr = command.python_name.split(":")
        assert callable(getattr(importlib.import_module(module), attr)), command.python_name
    widgets = {w.display_name for w in manifest.contributions.widgets}
    assert {title for _, title, _ in DOCKS} == widgets  # the workbench's docks, no more, no fewer


def test_manifest_reader_patterns_are_the_readers_extensions():
    volumes, cubes = PluginManifest.from_file(MANIFEST).contributions.readers
    assert volumes.command == "tessera.get_reader" and cubes.command == "tessera.get_cube_reader"
    assert {p.removeprefix("*") for p in volumes.filename_patterns} == set(VOLUME_EXTENSIONS)
    assert volumes.accepts_directories
    assert {p.removeprefix("*") for p in cubes.filename_patterns} == set(plugin.CUBE_SUFFIXES)


def test_installed_napari_sees_the_plugin():
    pm = PluginManager.instance()
    pm.discover()
    assert "tessera" in {m.name for m in pm.iter_manifests()}, "run `pip install -e .` first"


def test_get_reader_accepts_volumes_and_dicom_folders_only(tmp_path):
    nii = tmp_path / "scan.nii.gz"
    _nifti(nii)
    dicom = tmp_path / "series"
    write_series(dicom, SeriesSpec(values=np.zeros((4, 5, 3))), prefix="")  # files without an extension
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    assert plugin.get_reader(str(nii)) is plugin.read_volumes
    assert plugin.get_reader(str(dicom)) is plugin.read_volumes
    assert plugin.get_reader([str(nii), str(dicom)]) is plugin.read_volumes
    assert plugin.get_reader(str(tmp_path / "notes.txt")) is None
    assert plugin.get_reader(str(tmp_path / "empty")) is None
    assert plugin.get_reader([str(nii), str(tmp_path / "notes.txt")]) is None


def test_get_cube_reader_accepts_envi_headers_and_mat_files_only(tmp_path):
    hdr = tmp_path / "scene.hdr"
    envi.save_image(str(hdr), np.ones((4, 3, 5), np.float32), interleave="bsq", force=True)
    mat = tmp_path / "scene.mat"
    scipy.io.savemat(mat, {"scene": np.ones((4, 3, 5))})
    analyze = tmp_path / "brain.hdr"  # an Analyze 7.5 header: binary, a volume's, not ENVI's
    analyze.write_bytes((348).to_bytes(4, "little") + bytes(344))
    nii = tmp_path / "scan.nii.gz"
    _nifti(nii)
    assert plugin.get_cube_reader(str(hdr)) is plugin.read_cubes
    assert plugin.get_cube_reader([str(hdr), str(mat)]) is plugin.read_cubes
    assert plugin.get_cube_reader(str(tmp_path / "scene.bsq")) is None  # the header is what napari gets
    for other in (analyze, nii, tmp_path / "missing.hdr", tmp_path):
        assert plugin.get_cube_reader(str(other)) is None
    assert plugin.get_cube_reader([str(hdr), str(nii)]) is None
    bands, = (layer for layer in plugin.read_cubes(str(mat)) if layer[1]["name"] == "scene bands")
    assert bands[0].shape == (5, 4, 3)


def test_readers_notify_what_reading_found(tmp_path, monkeypatch):
    said = []
    monkeypatch.setattr(plugin, "notify_warning", said.append)
    nii = tmp_path / "series.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6, 2), np.int16), np.eye(4)), nii)
    plugin.read_volumes(str(nii))
    assert said == ["series.nii.gz: 4D image with 2 volumes: only the first is used"]
    hdr = tmp_path / "scene.hdr"
    envi.save_image(str(hdr), np.ones((4, 3, 3), np.float32), metadata={"wavelength": [0.45, 0.55, 0.65]},
                    force=True)
    plugin.read_cubes(str(hdr))
    assert said[1].startswith("scene.hdr: no wavelength units given")


@pytest.mark.parametrize(("renderer", "levels"), [("NVIDIA H200/PCIe/SSE2", 1), ("llvmpipe (LLVM 15)", 2)])
def test_the_reader_keeps_coarser_levels_only_where_3d_needs_them(tmp_path, monkeypatch, renderer, levels):
    """Plain napari gets no lock_detail: on a GPU the reader gives the full-resolution volume alone."""
    import app.layers
    import app.viewer

    monkeypatch.setattr(app.layers, "PREVIEW_VOXELS", 100)  # 6 x 7 x 8 stands in for a 512^3 volume
    monkeypatch.setattr(app.viewer, "_renderer", [renderer])
    nii = tmp_path / "scan.nii"
    _nifti(nii)
    ((data, kwargs, _),) = plugin.read_volumes(str(nii))
    shapes = [level.shape for level in data] if kwargs.get("multiscale") else [data.shape]
    assert shapes == [(6, 7, 8), (3, 4, 4)][:levels]


def test_reader_places_the_volume_in_world_mm(tmp_path):
    nii = tmp_path / "scan.nii"
    affine = _nifti(nii)
    (layer_data,) = plugin.read_volumes(str(nii))
    layer = Layer.create(*layer_data)
    assert layer.name == "scan"
    world = (affine @ [1, 2, 3, 1.0])[:3]
    at = tuple(np.rint(layer.world_to_data(world)).astype(int))
    assert layer.data[at] == np.asarray(nib.load(nii).dataobj)[1, 2, 3]


def test_sample_data_hooks():
    t1, tissue = plugin.mni152_sample()
    assert (t1[1]["name"], t1[2]) == (T1_NAME, "image")
    assert (tissue[1]["name"], tissue[2]) == (TISSUE_NAME, "labels")
    assert t1[0].shape == tissue[0].shape == (197, 233, 189)
    np.testing.assert_allclose(t1[1]["affine"], tissue[1]["affine"])
    (ct,) = plugin.ct_small_sample()
    assert ct[1]["name"] == CT_SMALL_NAME
    volume = ct[1]["metadata"]["volume"]
    assert volume.modality == "CT" and volume.shape == (128, 128, 1)
    # rescale intercept -1024 applied: air outside the body is about -1000 HU
    assert -1100 < float(np.min(volume.data)) < -800


@pytest.mark.qt
def test_plain_napari_opens_a_volume_through_the_plugin(make_napari_viewer, tmp_path):
    nii = tmp_path / "scan.nii.gz"
    affine = _nifti(nii)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(nii), plugin="tessera")
    np.testing.assert_allclose(layer.data_to_world([0, 0, 0]), (affine @ [5, 0, 0, 1.0])[:3])  # R flipped


@pytest.mark.qt
def test_plain_napari_opens_a_cube_through_the_plugin(make_napari_viewer, tmp_path):
    paths = write_demo_scene(tmp_path, size=(24, 20), splits=())
    viewer = make_napari_viewer()
    bands, rgb, truth = viewer.open(str(paths["envi"]), plugin="tessera")
    assert viewer.dims.axis_labels == ("band", "row", "column") and viewer.dims.nsteps[0] == 270
    viewer.dims.set_current_step(0, 100)
    stored = np.asarray(read_cube(paths["envi"]).data[..., 100], np.float32)
    np.testing.assert_array_equal(bands._slice.image.raw, stored)  # the band the slider is on, as stored
    assert rgb.rgb and truth.features["name"][1] == "Corn"


@pytest.mark.qt
@pytest.mark.parametrize("title", [title for _, title, _ in DOCKS])
def test_plain_napari_adds_each_dock_from_the_plugins_menu(make_napari_viewer, title):
    """With layers before and after: napari hands plugin docks a proxy of the viewer that wraps every
    layer anew, and the docks' layer choices must still find the layers."""
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((4, 5, 6), np.float32), name="before")
    _, widget = viewer.window.add_plugin_dock_widget("tessera", title)
    assert type(widget) in {cls for cls, _, _ in DOCKS}
    after = viewer.add_image(np.ones((4, 5, 6), np.float32), name="after")
    viewer.layers.selection.active = after
    viewer.add_labels(np.zeros((4, 5, 6), np.uint8), name="labels")
    for choice in (value for value in vars(widget).values() if type(value).__name__ == "LayerChoice"):
        assert choice.layer() is None or choice.layer() in list(viewer.layers)

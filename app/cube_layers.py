"""Hyperspectral cube -> napari layers: plain napari's reader (app.plugin) and the Hyperspectral dock.

A cube lives in pixel space (rows, columns) with a band axis, not in the RAS-millimetre world of volumes,
so its layers carry no affine; they are marked (`PIXELS_KEY`) so that the viewer shows them apart from
volumes (app.spaces). No-data pixels (ENVI's data ignore value) count in no contrast limit or stretch:
they are NaN (blank) in the bands, black in the RGB composite.
"""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np

from app.layers import LayerDataTuple
from engines.cube import Cube
from engines.errors import InputError
from engines.hyperspectral.display import DEFAULT_RGB_NM, band_image, rgb_composite, without_ignored
from engines.io.cubes import read_cube, read_labels

BAND_AXIS_LABELS = ("band", "row", "column")
# Metadata flag of a cube's layers: they live in its pixels, not in millimetres (app.spaces)
PIXELS_KEY = "pixel_space"
GROUND_TRUTH_OPACITY = 0.4


def band_view(cube: Cube, band: int) -> tuple[np.ndarray, tuple[float, float]]:
    """Band `band` as float32 (H, W), no data as NaN, and its 1st..99th percentile contrast limits (slow: a
    worker's job)."""
    data = band_image(cube, band)
    finite = data[np.isfinite(data)]
    lo, hi = (float(v) for v in np.percentile(finite, [1, 99])) if finite.size else (0.0, 1.0)
    return data, (lo, hi if hi > lo else lo + 1.0)


def band_stack(cube: Cube) -> da.Array:
    """All bands as a lazy (B, H, W) float32 array, no data as NaN: napari reads one band per slider step."""
    h, w, _ = cube.shape
    bands = da.from_array(cube.data, chunks=(h, w, 1), asarray=True)
    as_float = bands.map_blocks(lambda block: without_ignored(cube, block, np.float32), dtype=np.float32)
    return as_float.transpose(2, 0, 1)


def class_map_layer(labels: np.ndarray, class_names: list[str], name: str) -> LayerDataTuple:
    """A labels layer of a class map (H, W), 0 = unlabelled, whose "name" feature gives each class's name
    (napari shows it under the cursor); `class_names[c - 1]` names class c."""
    kwargs: dict = {"name": name, "opacity": GROUND_TRUTH_OPACITY, "metadata": {PIXELS_KEY: True}}
    if class_names:
        names = ["unlabelled", *class_names]
        kwargs["features"] = {"index": np.arange(len(names)), "name": names}
    return labels, kwargs, "labels"


def ground_truth_layer(cube: Cube, name: str) -> LayerDataTuple:
    """`class_map_layer` of the cube's ground truth (the cube must have one)."""
    if cube.labels is None:
        raise ValueError(f"{cube.source or name} has no ground truth")
    return class_map_layer(cube.labels, cube.class_names, f"{name} ground truth")


def covers_rgb(cube: Cube) -> bool:
    """True when the cube's wavelengths span the default RGB composite's (so its three bands differ)."""
    if cube.wavelengths_nm is None:
        return False
    nm = np.asarray(cube.wavelengths_nm, dtype=np.float64)
    return bool(nm.min() <= min(DEFAULT_RGB_NM) and max(DEFAULT_RGB_NM) <= nm.max())


def cube_layers(cube: Cube, name: str) -> list[LayerDataTuple]:
    """The layers plain napari opens a cube with: every band (a slider over the band axis, starting at the
    middle band), the RGB composite of 640/550/460 nm when the cube spans them (hidden), and the ground
    truth if any."""
    b = cube.shape[2]
    _, limits = band_view(cube, b // 2)
    meta = {"wavelengths_nm": None if cube.wavelengths_nm is None else np.asarray(cube.wavelengths_nm),
            PIXELS_KEY: True}
    layers: list[LayerDataTuple] = [(band_stack(cube), {
        "name": f"{name} bands", "colormap": "gray", "contrast_limits": limits, "rgb": False,
        "axis_labels": BAND_AXIS_LABELS, "metadata": meta}, "image")]
    if covers_rgb(cube):
        rgb, bands = rgb_composite(cube)
        nm = "/".join(f"{float(cube.wavelengths_nm[i]):.0f}" for i in bands)
        layers.append((rgb, {"name": f"{name} RGB {nm} nm", "rgb": True, "visible": False,
                             "metadata": {PIXELS_KEY: True}}, "image"))
    if cube.labels is not None:
        layers.append(ground_truth_layer(cube, name))
    return layers


def read_cube_file(path: str) -> tuple[list[LayerDataTuple], list[str]]:
    """The layers of the cube at `path` (`cube_layers`, named after the file) and what reading it found.

    A class map on its own (an ENVI Classification file, a .mat file holding only a 2-D label image such as
    WHU-Hi's ``_gt.mat`` or a split file) becomes one labels layer. Raises InputError naming the file when
    it is neither.
    """
    name = Path(path).stem
    try:
        cube = read_cube(path)
    except InputError as not_a_cube:
        if not path.lower().endswith(".mat"):
            raise
        try:
            labels, class_names = read_labels(path)
        except InputError:
            raise not_a_cube from None
        return [class_map_layer(labels, class_names, name)], []
    if str(cube.meta.get("file_type", "")).lower() == "envi classification":
        labels, class_names = read_labels(path)
        return [class_map_layer(labels, class_names, name)], cube.warnings
    return cube_layers(cube, name), cube.warnings

"""Volume -> napari layer data tuples, placed in world millimetres (DESIGN §2).

napari's world here is RAS mm with axes (0, 1, 2) = (R, A, S). napari slices a layer along its *data* axes,
so a layer whose voxel axes are permuted or flipped relative to RAS (an LPS DICOM series, a sagittal
acquisition) would ask for non-orthogonal slices. `canonical_view` therefore reorders and flips the voxel
axes to the closest RAS order with array views (no copy, a memory map stays a memory map) and folds the
inverse into the affine, so the layer's data-to-world transform is still exactly `volume.affine`. A volume
that is still oblique after that (or sheared by a gantry tilt) would be sliced wrongly by napari, which draws
one voxel slice as if the view were centred on the world origin: such a layer shows the volume sampled
(nearest voxel) onto an axis-aligned grid (`display_grid`, engines.reslice), so every 2D view is a true
world plane. Its Volume, in the layer's metadata, keeps the file's own voxels for the cursor readout.

Everything here runs in a worker thread when called from `app.viewer.open_paths`: contrast limits come from
a strided subsample of at most `SUBSAMPLE_VOXELS` voxels, never a pass over the full volume.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import weakref
from typing import TYPE_CHECKING, Any

import nibabel as nib
import numpy as np

from app.window_level import CT_PRESETS, dicom_window, percentile_window, to_contrast_limits
from engines.errors import InputError
from engines.io import VOLUME_EXTENSIONS, read_volume
from engines.io.cubes import is_cube_path
from engines.reslice import aligned_grid, reslice
from engines.volume import Volume

if TYPE_CHECKING:
    from napari.layers import Layer

WORLD_AXIS_LABELS = ("R", "A", "S")
WORLD_UNITS = ("mm", "mm", "mm")
# CT without a DICOM window opens in this soft-tissue preset of app.window_level (W 400 / L 50 HU).
CT_DEFAULT_PRESET = "abdomen"
# Upper bound on voxels read to pick contrast limits (a 512^3 volume is read at stride 8).
SUBSAMPLE_VOXELS = 2**18
# Key under which a layer's metadata holds its source Volume (the one source of truth for docks).
VOLUME_KEY = "volume"
# Blocks in which a custom lazy array is read when it has to be reordered (64^3 float32 = 1 MiB).
LAZY_CHUNKS = (64, 64, 64)

LayerDataTuple = tuple[Any, dict, str]


def canonical_view(volume: Volume) -> tuple[Any, np.ndarray]:
    """Voxel data reordered to the closest RAS axis order, as a view, and the affine of that view.

    Parameters
    ----------
    volume : Volume
        data of shape (I, J, K) in the file's voxel order, `affine` voxel -> RAS mm.

    Returns
    -------
    data : array-like, shape (I', J', K')
        `volume.data` transposed/flipped (numpy views; dask stays lazy) so that data axis n points
        mostly along world axis n, in the positive direction.
    affine : ndarray, shape (4, 4)
        Maps indices of `data` to RAS mm: ``affine @ idx' == volume.affine @ idx`` for the same voxel.
    """
    ornt, _, affine = _canonical_grid(volume)
    data = volume.data
    if not (ornt == [[0, 1], [1, 1], [2, 1]]).all():
        data = _supports_views(data)
    for axis, flip in enumerate(ornt[:, 1]):
        if flip == -1:
            data = np.flip(data, axis=axis)
    data = np.transpose(data, tuple(int(a) for a in np.argsort(ornt[:, 0])))
    return data, affine


def _canonical_grid(volume: Volume) -> tuple[np.ndarray, tuple[int, ...], np.ndarray]:
    """The voxel axes' closest RAS orientation (nibabel's ornt), and the shape and affine of the voxels
    reordered to it - what `canonical_view` shows, without touching the data."""
    ornt = nib.orientations.io_orientation(volume.affine)
    shape = tuple(volume.shape[int(a)] for a in np.argsort(ornt[:, 0]))
    return ornt, shape, volume.affine @ nib.orientations.inv_ornt_aff(ornt, volume.shape)


def _supports_views(data: Any) -> Any:
    """`data` itself if numpy can flip/transpose it lazily (ndarray, memmap, dask), else a dask wrapper.

    A custom lazy array (e.g. a scaled NIfTI proxy) only offers shape/dtype/__getitem__; np.flip would read
    it whole, dask reads the blocks a slice touches.
    """
    if isinstance(data, np.ndarray) or hasattr(data, "__array_function__"):
        return data
    import dask.array as da

    return da.from_array(data, chunks=LAZY_CHUNKS, asarray=True, fancy=False)


def obliquity_deg(affine: np.ndarray) -> float:
    """Largest angle (degrees) between a voxel axis of `affine` and its closest world axis; 0 if aligned."""
    return float(np.degrees(np.max(np.abs(nib.affines.obliquity(affine)))))


def contrast_limits(volume: Volume) -> tuple[float, float]:
    """Display range for `volume`: its DICOM window, else the soft-tissue preset for CT, else the
    1st-99th percentile of a strided subsample (MR and anything else) of at most `SUBSAMPLE_VOXELS`."""
    window = dicom_window(volume)
    if window is None and volume.modality == "CT":
        window = CT_PRESETS[CT_DEFAULT_PRESET]
    if window is None:
        try:
            window = percentile_window(volume.data, 1.0, 99.0, max_samples=SUBSAMPLE_VOXELS)
        except ValueError:  # no finite value at all: any valid range will do
            return 0.0, 1.0
    return to_contrast_limits(*window)


# Image layers above this many voxels also get coarser levels (`levels`): napari renders a multiscale layer's
# coarsest level in 3D, where software OpenGL (Mesa's llvmpipe: no GPU, or Xvfb) takes seconds per frame on
# a 512^3 volume (app.viewer.lock_detail decides what a hardware renderer shows).
PREVIEW_VOXELS = 1 << 24


def levels(data: Any) -> list[Any]:
    """`data` and, while the last is above `PREVIEW_VOXELS`, every 2nd, 4th... voxel of it along each axis.

    The levels are strided views (a memory map stays a map; nothing is computed or copied), so each value a
    coarse level shows is a voxel's own. napari draws a level's sample j where the block of voxels 2j, 2j + 1
    would be centred: within half a voxel of the voxel it shows, less than a screen pixel at that level.
    """
    out = [data]
    while np.prod(out[-1].shape, dtype=np.int64) > PREVIEW_VOXELS:
        out.append(out[-1][(slice(None, None, 2),) * out[-1].ndim])
    return out


# Metadata key of a resampled layer: the `data_digest` of the data it was made with.
SHOWN_DIGEST_KEY = "shown_digest"
# Metadata key of a layer showing its file's voxels: a weak reference to the array it was made with, to tell
# whether it still shows them (`unchanged_source`; a weak one, so a replaced array is not kept alive).
SHOWN_DATA_KEY = "shown_data"
# Above this obliquity (degrees) a layer shows its volume resampled on an axis-aligned grid; below it,
# napari's slice is off by less than 0.002 mm per 10 mm from the world origin.
RESLICE_ABOVE_DEG = 0.01
# ... unless that grid would exceed this many voxels (4 GiB of float32): then the volume is shown as it is.
RESLICE_MAX_VOXELS = 1 << 30


def display_grid(volume: Volume) -> tuple[tuple[int, ...], np.ndarray, bool]:
    """Shape and affine of the voxel grid a layer of `volume` shows, and whether it is a resampled one.

    A single oblique slice (an axis of one voxel) is shown as it is: a world plane would cut it in a line."""
    if obliquity_deg(volume.affine) > RESLICE_ABOVE_DEG and min(volume.shape) > 1:
        affine, shape = aligned_grid(volume.affine, volume.shape)
        if np.prod(shape, dtype=np.int64) <= RESLICE_MAX_VOXELS:
            return shape, affine, True
    _, shape, affine = _canonical_grid(volume)
    return shape, affine, False


def _placement(volume: Volume, name: str | None, *, labels: bool = False,
               as_stored: bool = False) -> tuple[Any, dict, bool]:
    """The data a layer of `volume` shows, its layer kwargs, and whether the data was resampled.

    `as_stored`: the volume's voxels in their own order and affine, as they are (a job's output written on
    a layer's own grid goes back onto that grid); else `canonical_view`, or `display_grid`'s resampling.
    """
    shape, affine, resampled = display_grid(volume)
    if as_stored:
        data, affine, resampled = volume.data, volume.affine, False
    elif resampled:
        data = reslice(volume.data, volume.affine, affine, shape, fill=0 if labels else None)
    else:
        data, affine = canonical_view(volume)
    metadata: dict[str, Any] = {VOLUME_KEY: volume}
    if not resampled:
        if not labels and isinstance(data, np.ndarray):
            # read-only: an image edited in place would still pass for its file, which a job would read
            # (`unchanged_source`); a replaced array is told apart by the weak reference below
            data = data.view()
            data.flags.writeable = False
        with contextlib.suppress(TypeError):  # an array type without weak references: never "unchanged"
            metadata[SHOWN_DATA_KEY] = weakref.ref(data)
    kwargs = {
        "name": name or _default_name(volume),
        "affine": affine,
        "axis_labels": WORLD_AXIS_LABELS,
        "units": WORLD_UNITS,
        "metadata": metadata,
    }
    return data, kwargs, resampled


def data_digest(data: Any) -> str:
    """A digest of an array's values (SHA-1 of its bytes, with shape and dtype): whether a layer still
    shows what it was made with (one pass over the bytes, no copy of a contiguous array)."""
    array = np.ascontiguousarray(data)
    digest = hashlib.sha1(f"{array.shape}{array.dtype.str}".encode(), usedforsecurity=False)
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def series_label(volume: Volume) -> str:
    """A DICOM series in words, for the Recent list: modality and description ("MR 'T2 axial'")."""
    description = str(volume.meta.get("series_description", "")).strip()
    named = f"'{description}'" if description else "(no description)"
    return f"{volume.modality or 'unknown modality'} {named}"


def _default_name(volume: Volume) -> str:
    """The file's name without its extension; for a DICOM folder, the folder's name and which series it is
    ("study (T2 axial)", else the UID's end), so two series of one folder can be told apart."""
    source = str(volume.source).rstrip("/\\")
    stem = source.replace("\\", "/").rsplit("/", 1)[-1] or "volume"
    uid = volume.meta.get("series_uid")
    if uid and os.path.isdir(source):
        description = str(volume.meta.get("series_description", "")).strip()
        return f"{stem} ({description or 'series …' + str(uid)[-8:]})"
    for suffix in sorted(VOLUME_EXTENSIONS, key=len, reverse=True):  # ".nii.gz" before ".gz"-less ".nii"
        if stem.lower().endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def image_layer(volume: Volume, *, name: str | None = None, visible: bool = True) -> LayerDataTuple:
    """An image layer data tuple for `volume`, placed in RAS mm, with contrast limits from `contrast_limits`.

    The layer's ``metadata["volume"]`` is `volume` itself; its data is `canonical_view(volume)[0]`, or the
    volume sampled onto `display_grid(volume)` when it is oblique; above `PREVIEW_VOXELS`, that data and its
    coarser `levels` (a multiscale layer: `full_resolution` gives the data).
    """
    data, kwargs, resampled = _placement(volume, name)
    if resampled:  # what it shows, to tell later whether it still does (app.measured)
        kwargs["metadata"][SHOWN_DIGEST_KEY] = data_digest(data)
    pyramid = levels(data)
    # rgb=False: a volume of 3 or 4 slices is not a colour image (napari's guess from the last axis)
    kwargs.update(contrast_limits=contrast_limits(volume), colormap="gray", visible=visible, rgb=False)
    if len(pyramid) > 1:
        return pyramid, {**kwargs, "multiscale": True}, "image"
    return data, kwargs, "image"


def labels_layer(volume: Volume, *, name: str | None = None, opacity: float = 0.5,
                 visible: bool = True, as_stored: bool = False) -> LayerDataTuple:
    """A labels layer data tuple for an integer label `volume` (0 = background), placed like `image_layer`,
    or with `as_stored` on the volume's own voxel grid as it is (neither reordered nor resampled).

    Float label files are rounded to int32 (a copy; napari labels must be integers). Names in
    ``volume.meta["label_names"]`` (index = label value) become the layer's "name" feature, which napari
    shows under the cursor.
    """
    data, kwargs, resampled = _placement(volume, name, labels=True, as_stored=as_stored)
    if not np.issubdtype(np.dtype(data.dtype), np.integer):
        data = np.rint(np.asarray(data)).astype(np.int32)
    if resampled:  # what it shows, to tell later whether it was painted since (app.measured)
        kwargs["metadata"][SHOWN_DIGEST_KEY] = data_digest(data)
    kwargs.update(opacity=opacity, visible=visible)
    names = volume.meta.get("label_names")
    if names:
        kwargs["features"] = {"index": np.arange(len(names)), "name": list(names)}
    return data, kwargs, "labels"


def layer_volume(layer: Any) -> Volume | None:
    """The Volume a layer was made from (``metadata["volume"]``), or None for other layers."""
    volume = getattr(layer, "metadata", {}).get(VOLUME_KEY)
    return volume if isinstance(volume, Volume) else None


def read_layers(path: str, *, series_uid: str | None = None, as_labels: bool = False) -> list[LayerDataTuple]:
    """Read `path` (a volume file or a DICOM folder) with `engines.io.read_volume` and return its layer.

    Slow (seconds for a DICOM folder or a .nii.gz): call it in a worker thread. Raises `InputError` for bad
    input, naming the file. Hyperspectral cubes are refused with a pointer to the Hyperspectral dock: they
    live in pixel space with a band axis, not in this RAS-millimetre world.
    """
    if is_cube_path(path):
        raise InputError("this is a hyperspectral cube, not a volume: open it in the Hyperspectral dock, "
                         "which shows its bands, composites and spectra", path)
    volume = read_volume(path, series_uid=series_uid)
    return [labels_layer(volume) if as_labels else image_layer(volume)]


# Voxel grids of an image and a labels layer match when their affines agree to this (mm).
GRID_TOLERANCE_MM = 1e-4


def layer_affine(layer: Layer) -> np.ndarray:
    """The (ndim+1)² matrix from `layer`'s data indices to world mm (affine, scale, rotate... together)."""
    ndim = layer.ndim
    origin = np.asarray(layer.data_to_world(np.zeros(ndim)), dtype=np.float64)
    affine = np.eye(ndim + 1)
    for axis, unit in enumerate(np.eye(ndim)):
        affine[:ndim, axis] = np.asarray(layer.data_to_world(unit), dtype=np.float64) - origin
    affine[:ndim, ndim] = origin
    return affine


def full_resolution(layer: Layer):
    """The layer's full-resolution array (level 0 of a multiscale layer)."""
    return layer.data[0] if layer.multiscale else layer.data


def unchanged_source(layer: Layer) -> str | None:
    """The single file an image layer shows unchanged (so a job reading it sees the same volume), else None.

    The layer's Volume source must be a file, not a folder (a DICOM folder may hold several series and a job
    would read its largest), and the layer's data must be that Volume's own voxels as `image_layer` placed
    them (not resampled for display): the very array it was made with (not one a plugin or the console
    set since), with the shape and affine of `canonical_view(volume)`. A job on a resampled oblique layer
    gets the layer's grid, the grid its labels are drawn on.
    """
    volume = layer_volume(layer)
    if volume is None or not volume.source or not os.path.isfile(volume.source):
        return None
    shown = layer.metadata.get(SHOWN_DATA_KEY)
    if not isinstance(shown, weakref.ref) or shown() is not full_resolution(layer):
        return None
    shape, affine, resampled = display_grid(volume)
    if resampled or tuple(shape) != tuple(full_resolution(layer).shape):
        return None
    return volume.source if np.allclose(affine, layer_affine(layer), atol=GRID_TOLERANCE_MM) else None

"""Inference: super-resolve one grey slice, or every slice of a volume in a plane, with the right affine."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from engines.errors import InputError
from engines.files import NIFTI_SUFFIXES, check_output
from engines.superres.data import intensity_range, normalise
from engines.superres.geometry import check_scales, output_size, upsampled_affine
from engines.superres.model import MetaSR
from engines.superres.resample import upsample_bicubic
from engines.superres.weights import cached_model
from engines.volume import Volume

# plane -> (normal, vertical, horizontal) world axes of a RAS world; the vertical axis is the slice's y
# (scaled by sy), the horizontal its x (scaled by sx), as the viewer shows them (see app/planes.py).
PLANE_WORLD_AXES: dict[str, tuple[int, int, int]] = {
    "axial": (2, 1, 0),
    "coronal": (1, 2, 0),
    "sagittal": (0, 2, 1),
}
IMAGE_SUFFIXES = (".png",)
# Larger input values are refused: the float32 result (which overshoots the input's range, like bicubic
# does) could overflow to inf.
_MAX_ABS_VALUE = float(np.finfo(np.float32).max) / 4


def check_nan_fill(nan_fill: float | None) -> None:
    """InputError unless `nan_fill` is None or a finite number in float32's range."""
    with np.errstate(over="ignore"):  # a fill beyond float32 becomes inf, and is refused with the others
        finite = nan_fill is None or np.isfinite(np.float32(nan_fill))
    if not finite:
        raise InputError(f"nan_fill (CLI: --nan-fill) must be a finite number, got {nan_fill!r}")


def _check_slice(slice2d: np.ndarray, nan_fill: float | None) -> np.ndarray:
    arr = np.asarray(slice2d)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        raise InputError(f"expected a grey slice, got an RGB(A) image of shape {arr.shape}; convert it to "
                         "grey first (e.g. skimage.color.rgb2gray)")
    if arr.ndim != 2:
        raise InputError(f"expected a 2D slice, got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"the slice is empty (shape {arr.shape})")
    if min(arr.shape) < 2:
        raise InputError(f"the slice is {arr.shape[0]}x{arr.shape[1]} pixels; super-resolution needs at "
                         "least 2 pixels along each axis (for a 2D image, use the plane it lies in)")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise InputError(f"expected real numbers, got dtype {arr.dtype}")
    check_nan_fill(nan_fill)
    arr = arr.astype(np.float32)
    bad = ~np.isfinite(arr)
    if bad.any():
        if nan_fill is None:
            raise InputError(f"the slice has {int(bad.sum())} NaN or infinite values; pass nan_fill "
                             "(CLI: --nan-fill 0) to replace them")
        arr = np.where(bad, np.float32(nan_fill), arr)
    peak = float(np.abs(arr).max())
    if peak > _MAX_ABS_VALUE:
        raise InputError(f"values reach {peak:.3g}, too close to the float32 maximum "
                         f"({np.finfo(np.float32).max:.3g}) for the result (which can overshoot the input's "
                         f"range) to be represented; rescale the data below {_MAX_ABS_VALUE:.3g}")
    return arr


def super_resolve(
    slice2d: np.ndarray,
    sx: float,
    sy: float,
    model: MetaSR | str = "sr_light",
    *,
    value_range: tuple[float, float] | None = None,
    nan_fill: float | None = None,
    device: str = "cpu",
) -> np.ndarray:
    """Super-resolve a grey slice (H, W) -> float32 (round(H*sy), round(W*sx)) in the input's units.

    Parameters
    ----------
    slice2d : ndarray (H, W)
        Grey values; rows are y, columns x. RGB, empty, 1-pixel-wide slices and NaNs raise InputError.
    sx, sy : float
        Scales along x (columns) and y (rows), each in [1, 4], at least one above 1.
    model : MetaSR or str
        A model, or the name/path of one (loaded once and cached).
    value_range : (low, high), optional
        Intensities mapped to 0 and 1 for the network (default: the slice's 0.5/99.5 percentiles; pass the
        volume's so neighbouring slices are treated alike).
    nan_fill : float, optional
        Replace NaN/inf by this value instead of refusing the slice.
    """
    sx, sy = check_scales(sx, sy)
    arr = _check_slice(slice2d, nan_fill)
    if isinstance(model, str):
        model = cached_model(model, device)
    lo, hi = value_range if value_range is not None else intensity_range(arr)
    x = torch.from_numpy(normalise(arr, (lo, hi)))[None, None].to(device)
    x = x.contiguous(memory_format=torch.channels_last)  # as `cached_model`'s weights
    with torch.inference_mode():
        out = model(x, sx, sy)[0, 0].float().cpu().numpy()
    return out * np.float32(hi - lo) + np.float32(lo)


def bicubic(slice2d: np.ndarray, sx: float, sy: float, *, nan_fill: float | None = None) -> np.ndarray:
    """Bicubic upsampling of a grey slice (H, W) -> float32 (round(H*sy), round(W*sx)), on the same grid
    and with the same input checks as `super_resolve` (the baseline shown before the network's result)."""
    sx, sy = check_scales(sx, sy)
    arr = _check_slice(slice2d, nan_fill)
    return upsample_bicubic(torch.from_numpy(arr)[None, None], sx, sy)[0, 0].numpy()


def take_slice(data, axes: tuple[int, int, int], index: int) -> np.ndarray:
    """Slice `index` along axes[0] of a 3D array as (rows = axes[1], columns = axes[2]), float32.

    `data` may be lazy (memmap, dask, a NIfTI proxy): only the slice is read.
    """
    normal, vert, horiz = axes
    if not 0 <= index < data.shape[normal]:
        raise InputError(f"slice {index} is outside the {data.shape[normal]} slices along axis {normal}")
    key = [slice(None)] * 3
    key[normal] = index
    plane = np.asarray(data[tuple(key)], dtype=np.float32)
    return plane if vert < horiz else plane.T


def slice_volume(slice2d: np.ndarray, affine: np.ndarray, axes: tuple[int, int, int], index: int,
                 sx: float, sy: float) -> tuple[np.ndarray, np.ndarray]:
    """A super-resolved slice as a one-slice 3D array and its affine, on the grid of the original volume.

    Parameters
    ----------
    slice2d : ndarray (round(H*sy), round(W*sx))
        Slice `index` of a volume with `affine`, upsampled by (sx, sy); rows = axes[1], columns = axes[2].
    axes : (normal, vertical, horizontal)
        Voxel axes of the volume, as for `take_slice`.

    Returns
    -------
    data : ndarray, 3D, size 1 along axes[0]
    affine : ndarray (4, 4)
        `upsampled_affine` of the volume's affine with the origin moved to slice `index`, so the result
        overlays the original slice in world millimetres.
    """
    normal, vert, horiz = axes
    scales = [1.0, 1.0, 1.0]
    scales[vert], scales[horiz] = sy, sx
    out = upsampled_affine(affine, tuple(scales))
    out[:3, 3] += np.asarray(affine, dtype=np.float64)[:3, normal] * index
    plane = slice2d if vert < horiz else slice2d.T
    return np.expand_dims(plane, normal), out


def plane_axes(affine: np.ndarray, plane: str) -> tuple[int, int, int]:
    """Voxel axes (normal, vertical, horizontal) of `plane` for a volume with this affine."""
    if plane not in PLANE_WORLD_AXES:
        raise InputError(f"unknown plane {plane!r}; expected one of {list(PLANE_WORLD_AXES)}")
    world_of_voxel = nib.orientations.io_orientation(affine)[:, 0].astype(int)
    return tuple(int(np.flatnonzero(world_of_voxel == w)[0]) for w in PLANE_WORLD_AXES[plane])


def super_resolve_volume(
    volume: Volume,
    sx: float,
    sy: float,
    *,
    plane: str | None = "axial",
    model: MetaSR | str = "sr_light",
    nan_fill: float | None = None,
    device: str = "cpu",
    on_slice=None,
) -> Volume:
    """Super-resolve every slice of `volume` in `plane`; the result has the upsampled affine.

    `plane=None` treats the volume as a stack of 2D images (I = rows = y, J = columns = x, K slices), as
    for a PNG. The field of view is kept: in-plane spacing divides by the scales and the first voxel
    centre moves by (1/s - 1)/2 input voxels. `on_slice(done, total)` is called after each slice.
    """
    sx, sy = check_scales(sx, sy)
    data = np.asarray(volume.data)
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim != 3:
        raise InputError(f"expected a 3D volume or a 2D image, got shape {data.shape}", volume.source)
    check_nan_fill(nan_fill)
    normal, vert, horiz = (2, 0, 1) if plane is None else plane_axes(volume.affine, plane)
    warnings: list[str] = []
    data = data.astype(np.float32)
    bad = ~np.isfinite(data)
    if bad.any():
        if nan_fill is None:
            raise InputError(f"the volume has {int(bad.sum())} NaN or infinite voxels; use --nan-fill VALUE "
                             "to replace them", volume.source)
        warnings.append(f"{int(bad.sum())} NaN or infinite voxels replaced by {nan_fill}")
        data = np.where(bad, np.float32(nan_fill), data)
    moved = np.moveaxis(data, (normal, vert, horiz), (0, 1, 2))  # (slices, y, x)
    try:
        if moved.shape[0] == 0:
            raise InputError(f"the volume has no {plane or 'image'} slices (shape {data.shape})")
        _check_slice(moved[0], nan_fill)  # shape problems before anything slow
        value_range = intensity_range(data)
    except InputError as exc:
        raise InputError(exc.problem, volume.source) from None
    if isinstance(model, str):
        model = cached_model(model, device)
    scales = [1.0, 1.0, 1.0]
    scales[vert], scales[horiz] = sy, sx
    out_shape = [output_size(n, s) for n, s in zip(data.shape, scales, strict=True)]
    out = np.empty(out_shape, dtype=np.float32)
    out_moved = np.moveaxis(out, (normal, vert, horiz), (0, 1, 2))
    for k in range(moved.shape[0]):
        try:
            out_moved[k] = super_resolve(moved[k], sx, sy, model, value_range=value_range, device=device)
        except InputError as exc:
            raise InputError(f"{plane or 'image'} slice {k}: {exc.problem}", volume.source) from None
        if on_slice is not None:
            on_slice(k + 1, moved.shape[0])
    return Volume(data=out, affine=upsampled_affine(volume.affine, tuple(scales)), modality=volume.modality,
                  window=volume.window, meta={**volume.meta, "super_resolution": {
                      "scale_x": sx, "scale_y": sy, "plane": plane or "image"}},
                  source="", warnings=warnings)


def read_input(path: str | os.PathLike) -> tuple[Volume, bool]:
    """Read a volume (engines.io.read_volume) or a PNG image; returns (volume, is_2d_image).

    A PNG becomes a (rows, columns, 1) volume with 1 mm pixels; RGB(A) is converted to grey (a warning
    says so).
    """
    text = str(path)
    if not Path(text).exists():
        raise InputError("no such file or folder", path)
    if text.lower().endswith(IMAGE_SUFFIXES):
        from skimage import io as skio
        from skimage.color import rgb2gray, rgba2rgb

        try:
            img = skio.imread(text)
        except Exception as exc:  # decoders raise what they like: PIL SyntaxError, SimpleITK RuntimeError...
            raise InputError(f"cannot read the image: {exc or type(exc).__name__}", path) from None
        warnings = []
        if img.ndim == 3 and img.shape[-1] in (3, 4):
            img = rgb2gray(rgba2rgb(img) if img.shape[-1] == 4 else img)
            warnings.append("RGB image converted to grey (ITU-R 601 luma, values 0..1)")
        if img.ndim != 2:
            raise InputError(f"expected a grey or RGB image, got shape {img.shape}", path)
        return Volume(data=img[:, :, None], affine=np.eye(4), source=text, warnings=warnings,
                      meta={"dtype": str(img.dtype)}), True
    from engines.io import read_volume

    volume = read_volume(text)
    return volume, False


def check_output_path(path: str | os.PathLike, *, is_image: bool) -> None:
    """InputError naming `path` when the result could not be written there (checked before any slice is
    computed): a volume is written as NIfTI, a 2D image as PNG or NIfTI, into a folder that exists."""
    if str(path).lower().endswith(".png") and not is_image:
        raise InputError("PNG output is for a 2D image input; write .nii.gz for a volume", path)
    check_output(path, (".png", *NIFTI_SUFFIXES) if is_image else NIFTI_SUFFIXES, "the result")


def write_output(volume: Volume, path: str | os.PathLike, *, is_image: bool = False) -> None:
    """Write NIfTI (.nii/.nii.gz) through engines.io, or PNG for a 2D image result."""
    text = str(path)
    check_output_path(path, is_image=is_image and volume.shape[2] == 1)
    if text.lower().endswith(".png"):
        from skimage import io as skio

        img = np.asarray(volume.data)[:, :, 0]
        dtype = np.dtype(volume.meta.get("dtype", "uint8"))
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            img = np.clip(np.rint(img), info.min, info.max).astype(dtype)
        else:
            img = np.clip(img, 0.0, 1.0)
            img = np.rint(img * 255).astype(np.uint8)
        skio.imsave(text, img, check_contrast=False)
        return
    from engines.io.nifti import write_volume

    write_volume(volume, text)

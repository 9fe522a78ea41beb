"""The training job's volumes on disk, read block by block, so that no rank holds the whole volume.

`prepare_data` reads the image and labels a slab at a time (an uncompressed file is never held whole: its
Volume.data is a memory map or a scaled proxy), checks them (same grid, labels that are class indices),
normalises the image (zero mean, unit SD over the volume) and writes both, padded to the job's block
multiple, as .npy files in OUT/data/ with a meta.json naming the source files (size, modification time) and
the block. A later run or --resume on the same, unchanged files and block reuses them (`open_data`) without
reading the sources again. Each rank then reads only the boxes it trains on (`BlockFile.read`: positioned
reads of the box's rows, no memory map whose pages would pile up in the rank's RSS as random crops wander).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.errors import InputError
from engines.partition.pad import padded_shape

DATA, META, IMAGE, LABELS = "data", "meta.json", "image.npy", "labels.npy"
FORMAT = 1  # bump when what prepare_data writes changes
SLAB_VOXELS = 1 << 23  # voxels read at a time while preparing: bounds the temporaries to ~100 MB
HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


class BlockFile:
    """A C-ordered .npy volume whose boxes are read with positioned reads, without mapping the file.

    Parameters
    ----------
    path : path
        A .npy file written by numpy (format version 1.0 or 2.0, C order, 3 dimensions).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version not in HEADER_READERS:
                raise InputError(f".npy format version {version} is not one this job writes", self.path)
            shape, fortran, dtype = HEADER_READERS[version](f)
            self.offset = f.tell()
        if fortran or len(shape) != 3:
            raise InputError(f"expected a C-ordered 3D array; found shape {shape}, Fortran order {fortran}",
                             self.path)
        self.shape: tuple[int, int, int] = tuple(int(n) for n in shape)  # type: ignore[assignment]
        self.dtype = np.dtype(dtype)

    def read(self, box: Sequence[slice]) -> np.ndarray:
        """The voxels of `box` (three slices with step 1 inside the volume), as a new C-ordered array.

        One read per plane of the box: its rows from the first to the last, whole along W, then cut to the
        box's W range (so a block of a mesh split along W costs the other blocks' share of those rows).
        """
        (d0, d1, _), (h0, h1, _), (w0, w1, _) = (s.indices(n) for s, n in zip(box, self.shape, strict=True))
        _, height, width = self.shape
        item = self.dtype.itemsize
        out = np.empty((max(d1 - d0, 0), max(h1 - h0, 0), max(w1 - w0, 0)), self.dtype)
        if not out.size:
            return out
        length = (h1 - h0) * width * item
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for i, d in enumerate(range(d0, d1)):
                raw = self._read_exactly(fd, length, self.offset + (d * height + h0) * width * item, d)
                out[i] = np.frombuffer(raw, self.dtype).reshape(h1 - h0, width)[:, w0:w1]
        finally:
            os.close(fd)
        return out

    def _read_exactly(self, fd: int, length: int, start: int, plane: int) -> bytes:
        """`length` bytes from `start`: a read may return fewer (over 2 GiB, network file systems)."""
        parts, done = [], 0
        while done < length:
            part = os.pread(fd, length - done, start + done)
            if not part:
                raise InputError(f"the file ends early (plane {plane} of {self.shape[0]})", self.path)
            parts.append(part)
            done += len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)


@dataclass(frozen=True)
class JobData:
    """The prepared volumes of a training job and what was learnt reading them."""

    image: BlockFile  # (D, H, W) float32, normalised, padded to the block multiple
    labels: BlockFile  # (D, H, W) the smallest unsigned integer that holds the classes, padded with 0
    shape: tuple[int, int, int]  # the image's own extent, before padding
    affine: np.ndarray
    mean: float
    std: float
    classes: int


def data_dir(out: str | os.PathLike) -> Path:
    """Where a training output folder keeps its prepared volumes."""
    return Path(out) / DATA


def _stamp(path: Path) -> str:
    # Size, modification and change times, inode: a rewrite, a copy over it or a rename onto it shows,
    # however coarse the file system's mtime (ctime is set by the kernel on every change).
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}:{stat.st_ino}"


def _detached_data(header: Path) -> Path | None:
    """The voxel file a MetaImage (.mhd) or detached NRRD (.nhdr) header names, if it is one file."""
    keys = {".mhd": "elementdatafile", ".nhdr": "datafile"}
    key = keys.get(header.suffix.lower())
    if key is None:
        return None
    for line in header.read_text(errors="replace").splitlines():
        name, sep, value = line.partition("=" if header.suffix.lower() == ".mhd" else ":")
        if sep and name.replace(" ", "").lower() == key:
            value = value.strip()
            return None if value.upper() in ("LOCAL", "LIST") or "%" in value else header.parent / value
    return None


def source_identity(path: str | os.PathLike) -> dict:
    """What tells whether a volume's files changed: the absolute path and each file's size, times and
    inode (a DICOM folder's every file; a .mhd/.nhdr header's voxel file too)."""
    path = Path(path).resolve()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    if not path.is_dir() and (data := _detached_data(path)) is not None and data.exists():
        files.append(data)
    digest = hashlib.sha256()
    for item in files:
        digest.update(f"{item.relative_to(path) if path.is_dir() else item}\0{_stamp(item)}\n".encode())
    return {"path": str(path), "files": digest.hexdigest()}


def _key(image: str, labels: str, block: Sequence[int]) -> dict:
    return {"format": FORMAT, "image": source_identity(image), "labels": source_identity(labels),
            "block": [int(b) for b in block]}


def open_data(image: str, labels: str, block: Sequence[int], out: str | os.PathLike) -> JobData | None:
    """The prepared volumes in OUT/data/, when they were made from these unchanged files for `block`."""
    folder = data_dir(out)
    try:
        meta = json.loads((folder / META).read_text())
        key = _key(image, labels, block)
    except (OSError, ValueError):
        return None
    if meta.get("key") != key:
        return None
    try:
        files = BlockFile(folder / IMAGE), BlockFile(folder / LABELS)
    except OSError:  # a volume deleted by hand: prepare again
        return None
    return JobData(*files, tuple(meta["shape"]), np.asarray(meta["affine"], dtype=np.float64), meta["mean"],
                   meta["std"], meta["classes"])


def wait_for_data(image: str, labels: str, block: Sequence[int], out: str | os.PathLike, *,
                  timeout_s: float, give_up: Callable[[], str | None] = lambda: None) -> JobData:
    """`open_data` once another process (rank 0) has prepared the volumes; InputError after `timeout_s`,
    or as soon as `give_up()` gives a reason (the job is stopping, rank 0 failed)."""
    deadline = time.monotonic() + timeout_s
    while (found := open_data(image, labels, block, out)) is None:
        if reason := give_up():
            raise InputError(reason, data_dir(out))
        if time.monotonic() > deadline:
            raise InputError(f"rank 0 did not prepare the training volumes here within {timeout_s:.0f} s; "
                             f"with several machines OUT must be a folder every machine sees", data_dir(out))
        time.sleep(0.2)
    return found


def label_classes(labels: Any, path: str) -> int:
    """The class count C when `labels` (an array-like, e.g. Volume.data) are class indices 0..C-1, C >= 2;
    read a slab at a time.

    Raises InputError otherwise (fractions, infinities, negatives, a single class)."""
    exact = np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_
    if not exact and not np.issubdtype(labels.dtype, np.floating):
        raise InputError(f"labels must be whole numbers (class indices); found {labels.dtype} values", path)
    low, high = 0, 0
    for s in _slabs(labels.shape):
        slab = np.asarray(labels[s])
        if not exact and (bad := slab[~np.isfinite(slab) | (slab != np.round(slab))]).size:
            raise InputError(f"labels must be whole numbers (class indices); found {labels.dtype} values "
                             f"such as {bad.flat[0]}", path)
        if slab.size:
            low, high = min(low, int(slab.min())), max(high, int(slab.max()))
    if low < 0:
        raise InputError(f"labels must be 0 or more; found {low}", path)
    if high < 1:
        raise InputError("labels hold a single class; segmentation needs at least two", path)
    return high + 1


def _slabs(shape: Sequence[int]) -> list[slice]:
    """Slices along the first axis of a volume of `shape` holding about SLAB_VOXELS voxels each."""
    step = max(1, SLAB_VOXELS // max(math.prod(shape[1:]), 1))
    return [slice(d, min(d + step, shape[0])) for d in range(0, shape[0], step)]


def _moments(slab: np.ndarray) -> tuple[int, float, float]:
    """Voxel count, mean and sum of squared deviations of a float64 slab (changed in place)."""
    mean = float(slab.mean()) if slab.size else 0.0
    slab -= mean
    flat = slab.ravel(order="K")  # a view whatever the source's layout
    return slab.size, mean, float(np.dot(flat, flat))


def _mean_std(image: Any) -> tuple[float, float]:
    """Mean and SD over the whole volume (an array-like) in float64, reading each slab once: the slabs'
    own moments combined with Chan et al.'s pairwise update (no cancellation). One slab is held at a time."""
    count, mean, squares = 0, 0.0, 0.0
    for s in _slabs(image.shape):
        size, slab_mean, slab_squares = _moments(np.array(image[s], np.float64))  # a copy, never the source
        if size:
            total = count + size
            delta = slab_mean - mean
            mean += delta * size / total
            squares += slab_squares + delta**2 * count * size / total
            count = total
    return mean, math.sqrt(squares / max(count, 1))


def _write(path: Path, shape: tuple[int, int, int], dtype: np.dtype, fill: float, source: Any,
           normalise: tuple[float, float] | None = None) -> None:
    """Write `source` (an array-like, read a slab at a time) as a new .npy of `shape` and `dtype`, padded with
    `fill`; with `normalise` = (mean, sd), (value - mean) / sd.

    Plain writes, not a memory map, so a disk that fills up raises OSError rather than SIGBUS; the file
    appears under its name only when complete, and a failed one is removed.
    """
    tmp = path.with_suffix(".tmp.npy")
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}
    try:
        with open(tmp, "wb") as f:
            np.lib.format.write_array_header_1_0(f, header)
            slabs = _slabs(shape)
            buffer = np.empty((slabs[0].stop, *shape[1:]), dtype)  # one slab's memory, reused
            work = np.empty(buffer.size if normalise else 0, np.float64)
            for s in slabs:
                slab = buffer[: s.stop - s.start]
                slab.fill(fill)
                inside = np.asarray(source[s.start:min(s.stop, source.shape[0])])
                region = slab[: len(inside), : source.shape[1], : source.shape[2]]
                if normalise is None:
                    region[...] = inside
                else:  # in float64, then rounded once: a large offset costs no precision
                    shifted = work[: region.size].reshape(region.shape)
                    np.subtract(inside, normalise[0], out=shifted)
                    shifted /= normalise[1]
                    region[...] = shifted
                f.write(slab)  # its buffer: no copy
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _free_disk(folder: Path) -> int:
    """Free bytes where `folder` is, or would be once created."""
    for place in (folder, *folder.parents):
        if place.exists():
            return shutil.disk_usage(place).free
    return shutil.disk_usage(".").free


def prepare_data(image: str, labels: str, block: Sequence[int], out: str | os.PathLike,
                 check: Callable[[tuple[int, ...], int], None] = lambda shape, classes: None) -> JobData:
    """Check the volumes and write them to OUT/data/ for the ranks, unless an unchanged copy is there.

    Parameters
    ----------
    image, labels : paths
        Any format engines.io reads; the labels on the image's grid, integers 0..C-1.
    block : (int, int, int)
        The mesh's blocks x the network's downsampling: the volumes are padded (at the far end) to it.
    check : callable(shape, classes)
        The caller's own checks of the volume's shape and class count (raising InputError), run after
        reading and before anything is written.

    Raises
    ------
    InputError
        Shape or affine mismatch, not a 3D volume, labels that are not class indices, what `check`
        refuses, or too little disk. Nothing is written then.
    """
    if (found := open_data(image, labels, block, out)) is not None:
        return found
    from engines.io import read_volume

    key = _key(image, labels, block)  # the files as they are before reading: a later change shows
    image_vol, label_vol = read_volume(image), read_volume(labels)
    if image_vol.shape != label_vol.shape:
        raise InputError(f"labels are {label_vol.shape} voxels, the image {image_vol.shape}: they must "
                         f"share a grid", labels)
    if not np.allclose(image_vol.affine, label_vol.affine, atol=1e-3):
        raise InputError("labels and image have different voxel-to-world affines: they must share a grid",
                         labels)
    if len(image_vol.shape) != 3:
        raise InputError(f"a 3D volume is needed; this one is {image_vol.shape}", image)
    # Volume.data stays lazy (a memory map, a scaled proxy) and is read a slab at a time from here on,
    # so an uncompressed file is never held whole; a compressed one or a DICOM series is read whole.
    pixels, label_data = image_vol.data, label_vol.data
    classes = label_classes(label_data, labels)
    label_dtype = np.min_scalar_type(classes - 1)
    check(tuple(pixels.shape), classes)
    padded = padded_shape(pixels.shape, block)

    folder = data_dir(out)
    needed = int(np.prod(padded)) * (4 + label_dtype.itemsize)
    if needed > (free := _free_disk(folder)):
        raise InputError(f"the prepared training volumes need {needed / 2**30:.2f} GiB here; "
                         f"{free / 2**30:.2f} GiB are free", folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / META).unlink(missing_ok=True)  # what follows is not valid until the new meta.json is there
    mean, std = _mean_std(pixels)
    std = std or 1.0
    _write(folder / IMAGE, padded, np.dtype(np.float32), (0 - mean) / std, pixels, (mean, std))
    _write(folder / LABELS, padded, label_dtype, 0, label_data)
    affine = np.asarray(image_vol.affine, dtype=np.float64)
    meta = {"key": key, "shape": list(pixels.shape), "padded": list(padded), "affine": affine.tolist(),
            "mean": mean, "std": std, "classes": classes}
    tmp = folder / (META + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, folder / META)
    return JobData(BlockFile(folder / IMAGE), BlockFile(folder / LABELS), tuple(pixels.shape), affine, mean,
                   std, classes)

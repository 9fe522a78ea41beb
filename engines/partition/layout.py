"""How a volume is laid out over a mesh, checked without torch: mesh text, blocks that hold data, crops.

The launcher, the ranks and the Train 3D dock (whose process never imports torch) share these checks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from engines.errors import InputError
from engines.partition.models import MULTIPLES
from engines.partition.pad import padded_shape


def parse_mesh(text: str) -> tuple[tuple[int, int, int], int]:
    """Parse "DxHxW" or "DxHxWxP" (P = data-parallel replicas) into ((D, H, W), P).

    >>> parse_mesh("2x2x1")
    ((2, 2, 1), 1)
    """
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) not in (3, 4) or not all(p.strip().isdigit() and int(p) >= 1 for p in parts):
        raise ValueError(f"mesh must look like 2x2x1 (blocks along D, H, W) or 2x1x1x2 (x data-parallel "
                         f"replicas), with positive integers; got {text!r}")
    sizes = [int(p) for p in parts]
    return (sizes[0], sizes[1], sizes[2]), (sizes[3] if len(sizes) == 4 else 1)


def format_mesh(shape: Sequence[int], data_parallel: int = 1) -> str:
    """The inverse of `parse_mesh`: (2, 2, 1), 1 -> "2x2x1"."""
    text = "x".join(str(int(s)) for s in shape)
    return text if data_parallel == 1 else f"{text}x{data_parallel}"


def check_blocks_hold_data(shape: Sequence[int], multiple: Sequence[int], mesh_shape: Sequence[int],
                           mesh: str) -> None:
    """InputError when the padded volume's last blocks along an axis would hold nothing but padding (each
    block is a multiple of the model's downsampling, so a short axis fills fewer blocks than the mesh has):
    those ranks would only compute on filler."""
    for axis, (n, unit, blocks) in enumerate(zip(shape, multiple, mesh_shape, strict=True)):
        fits = max(k for k in range(1, blocks + 1) if (k - 1) * math.ceil(n / (k * unit)) * unit < n)
        if fits < blocks:
            local = math.ceil(n / (blocks * unit)) * unit
            raise InputError(
                f"mesh {mesh}: the volume's {n} voxels along {'DHW'[axis]} fill {fits} of its {blocks} "
                f"blocks there (each {local} voxels, a multiple of the model's {unit}); the others would "
                f"hold only padding: use at most {fits} along {'DHW'[axis]}")


def check_layout(shape: Sequence[int], *, model: str, mesh: str, crop: str) -> None:
    """InputError when the mesh or the crop cannot train a volume of `shape` with this network: the checks
    `plan_training` makes that need no data, without torch (the Train 3D dock makes them before it writes
    its layers)."""
    try:
        mesh_shape, _ = parse_mesh(mesh)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    check_volume(tuple(shape), (MULTIPLES[model],) * 3, mesh_shape, mesh, crop)


def check_volume(shape: tuple[int, ...], multiple: Sequence[int], mesh_shape: Sequence[int], mesh: str,
                 crop: str) -> tuple[int, int, int]:
    """The volume's blocks all hold data, and the crop fits and leaves the network's deepest layer more than
    one voxel (its normalisation has nothing to normalise over one); returns the crop's shape."""
    check_blocks_hold_data(shape, multiple, mesh_shape, mesh)
    block = tuple(m * n for m, n in zip(multiple, mesh_shape, strict=True))
    shape_ = crop_shape(crop, shape, block, mesh)
    if tuple(shape_) == tuple(multiple):  # only on an unsplit mesh: crops are multiples of the blocks
        what = (f"the volume, padded to {format_mesh(shape_)}," if crop == "full" else f"--crop {crop}")
        raise InputError(f"{what} is the network's whole downsampling ({format_mesh(multiple)}): its deepest "
                         f"layer would see one voxel, and normalisation needs more; "
                         + ("the volume is too small for this network" if crop == "full" else
                            f"use at least {2 * multiple[0]} along one axis"))
    return shape_


def crop_shape(text: str, shape: tuple[int, ...], block: tuple[int, int, int], mesh: str
               ) -> tuple[int, int, int]:
    """The shape of `--crop` TEXT ("D,H,W" or "full": the volume padded to the block multiple), checked
    to be a multiple of the block and to fit in the padded volume."""
    if text == "full":
        return padded_shape(shape, block)
    try:
        crop = tuple(int(v) for v in text.split(","))
    except ValueError:
        crop = ()
    if len(crop) != 3 or min(crop) < 1:
        raise InputError(f"--crop must be D,H,W (three positive integers) or 'full'; got {text!r}")
    padded = padded_shape(shape, block)  # crops are drawn from the volume padded to the block multiple
    for axis, (c, n, p, b) in enumerate(zip(crop, shape, padded, block, strict=True)):
        if c > p:
            raise InputError(f"--crop {text}: {c} along {'DHW'[axis]} exceeds the volume's {n}"
                             + (f" (padded to {p})" if p != n else ""))
        if c % b:
            raise InputError(f"--crop {text}: {c} along {'DHW'[axis]} is not a multiple of {b} (mesh "
                             f"{mesh} x the model's downsampling); use {max(b, c // b * b)} or 'full'")
    return crop  # type: ignore[return-value]

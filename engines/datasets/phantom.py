"""A synthetic CT-like phantom for benchmarks: ellipses of HU values with noise. Not real anatomy.

Used where a large volume of a realistic dtype, value range and compressibility is needed (e.g. the 512^3
open-volume benchmark); everything shown to users from it is labelled synthetic.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engines.volume import Volume

DESCRIPTION = "synthetic CT phantom (ellipses of air, lung, soft tissue and bone with noise; not anatomy)"
SLAB = 16  # slices generated at a time, so memory stays near the output array's own size


def synthetic_ct_phantom(shape: Sequence[int] = (512, 512, 512), *,
                         spacing_mm: Sequence[float] = (0.8, 0.8, 1.0), noise_hu: float = 12.0,
                         seed: int = 0) -> Volume:
    """A CT-like int16 volume in HU: a body ellipse (soft tissue, 40 HU) holding two lungs (-850 HU)
    whose size changes along the body axis and a spine (700 HU), in air (-1000 HU), plus Gaussian noise.

    Parameters
    ----------
    shape : (X, Y, Z) voxels, axes R, A, S.
    spacing_mm : voxel size along each axis.
    noise_hu : standard deviation of the noise.
    seed : noise seed.

    Returns
    -------
    Volume with ``data`` int16 of `shape`, a RAS affine centred on the origin, modality "CT".
    """
    nx, ny, nz = (int(n) for n in shape)
    rng = np.random.default_rng(seed)
    x = np.linspace(-1.0, 1.0, nx, dtype=np.float32)[:, None]
    y = np.linspace(-1.0, 1.0, ny, dtype=np.float32)[None, :]
    body = (x / 0.85) ** 2 + (y / 0.62) ** 2 < 1.0
    spine = (x / 0.09) ** 2 + ((y + 0.42) / 0.09) ** 2 < 1.0
    data = np.empty((nx, ny, nz), dtype=np.int16)
    for start in range(0, nz, SLAB):
        stop = min(start + SLAB, nz)
        slab = np.full((nx, ny, stop - start), -1000.0, dtype=np.float32)
        slab[body] = 40.0
        for k in range(start, stop):
            r = 0.22 + 0.12 * np.sin(np.pi * k / max(nz - 1, 1))  # lungs widest mid-volume
            lungs = (((np.abs(x) - 0.4) / r) ** 2 + (y / (1.5 * r)) ** 2 < 1.0) & body
            slab[:, :, k - start][lungs] = -850.0
        slab[spine] = 700.0
        slab += rng.normal(0.0, noise_hu, slab.shape).astype(np.float32)
        data[:, :, start:stop] = np.clip(np.rint(slab), -1024, 3071)
    affine = np.diag([*map(float, spacing_mm), 1.0])
    affine[:3, 3] = -0.5 * (np.asarray(shape) - 1) * np.asarray(spacing_mm, dtype=float)
    return Volume(data=data, affine=affine, modality="CT", meta={"description": DESCRIPTION},
                  source="synthetic")

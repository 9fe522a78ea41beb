"""A SYNTHETIC WHU-Hi-like farmland scene for demos, tests and the hyperspectral benchmark.

Nothing here is real imagery. The scene is composed from physically based and lab spectra that installed
packages ship (see `engines.datasets.spectra`): crop fields simulated with PROSPECT-D + 4SAIL with
class-specific leaf chlorophyll, water, dry matter, LAI and leaf-angle ranges (overlapping, as real crops
do), a river (modelled water), roads and houses (ECOSTRESS concrete, RELAB weathered lava as a dark
asphalt-like surface, prosail soil), plastic film (modelled), bare soil (prosail soils with lichen litter)
and mixed weed. Each field draws its own sub-range of its class's parameters; within a field the spectra
vary smoothly, crop rows let the soil show through, and 1-pixel field paths separate fields. The sensor
is a Nano-Hyperspec-like push-broom: 270 bands evenly over 400-1000 nm (FWHM 6 nm), a Gaussian
point-spread function (mixed pixels at every border), illumination that varies across the scene and
track, house shadows, per-column detector gains and signal-dependent noise, lowest SNR at both ends of
the range.

The default size is LongKou's (550 x 400 pixels); `size` makes small scenes for tests. Everything is
seeded and deterministic. `write_demo_scene` writes the scene in the WHU-Hi .mat layout and in ENVI, so
demos go through the real readers; `demo_scene_files` caches those files between runs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.io
from scipy import ndimage
from scipy.spatial import cKDTree
from spectral.io import envi

from engines.cube import Cube
from engines.datasets import spectra
from engines.errors import InputError
from engines.io.cube_whuhi import WHU_HI_CLASSES

SCENE_NAME = "SYNTHETIC_Farmland"
DESCRIPTION = (
    "SYNTHETIC WHU-Hi-like farmland scene (Tessera demo): PROSPECT-D+4SAIL crops, ECOSTRESS/RELAB "
    "lab spectra, modelled water and plastic film; not real imagery"
)
# Bump when the generator changes, so cached files are rebuilt.
GENERATOR_VERSION = 1
# LongKou's nine classes (same numbering), plus two that WHU-Hi HanChuan has: plastic film and bare soil.
CLASS_NAMES = (*WHU_HI_CLASSES["LongKou"], "Plastic film", "Bare soil")
SOYBEAN, RICE, WATER, ROADS, WEED, PLASTIC, SOIL = (
    CLASS_NAMES.index(name) + 1
    for name in (
        "Broad-leaf soybean",
        "Rice",
        "Water",
        "Roads and houses",
        "Mixed weed",
        "Plastic film",
        "Bare soil",
    )
)
FIELD_CLASSES = tuple(c for c in range(1, len(CLASS_NAMES) + 1) if c not in (WATER, ROADS))
# How often each field class is drawn once every class has a field (LongKou is mostly soybean and corn).
FIELD_WEIGHTS = {1: 3.0, 2: 1.2, 3: 1.0, 4: 3.5, 5: 1.2, 6: 1.5, 9: 1.0, 10: 0.8, 11: 1.0}
DEFAULT_SIZE = (550, 400)
REFLECTANCE_SCALE = 10000.0  # stored as uint16 reflectance x 10000, as many sensors deliver it
SENSOR_FWHM_NM = 6.0
LIBRARY_SIZE = 240  # simulated spectra per class; pixels mix and perturb these

# PROSPECT-D + 4SAIL ranges per crop: leaf structure n, chlorophyll cab and carotenoids car (ug/cm2),
# brown pigments, water cw and dry matter cm (g/cm2), LAI, mean leaf angle ala (deg), anthocyanins ant;
# row_gap = fraction of soil seen between rows at most. Ranges overlap on purpose.
CROPS: dict[int, dict[str, tuple[float, float]]] = {
    1: dict(  # Corn
        n=(1.3, 1.6),
        cab=(45, 65),
        car=(9, 14),
        cbrown=(0, 0.1),
        cw=(0.012, 0.018),
        cm=(0.004, 0.006),
        lai=(3.0, 5.0),
        ala=(55, 68),
        ant=(0, 2),
        row_gap=(0.10, 0.30),
    ),
    2: dict(  # Cotton
        n=(1.6, 2.0),
        cab=(35, 50),
        car=(8, 12),
        cbrown=(0, 0.2),
        cw=(0.011, 0.016),
        cm=(0.004, 0.006),
        lai=(2.5, 4.2),
        ala=(38, 52),
        ant=(0, 3),
        row_gap=(0.10, 0.25),
    ),
    3: dict(  # Sesame
        n=(1.5, 1.8),
        cab=(30, 45),
        car=(7, 11),
        cbrown=(0, 0.3),
        cw=(0.009, 0.014),
        cm=(0.003, 0.005),
        lai=(1.8, 3.5),
        ala=(45, 60),
        ant=(0, 2),
        row_gap=(0.10, 0.30),
    ),
    4: dict(  # Broad-leaf soybean
        n=(1.5, 1.8),
        cab=(40, 55),
        car=(8, 12),
        cbrown=(0, 0.05),
        cw=(0.010, 0.015),
        cm=(0.0035, 0.0055),
        lai=(3.5, 5.5),
        ala=(35, 50),
        ant=(0, 2),
        row_gap=(0.0, 0.12),
    ),
    5: dict(  # Narrow-leaf soybean
        n=(1.5, 1.8),
        cab=(38, 52),
        car=(8, 12),
        cbrown=(0, 0.1),
        cw=(0.010, 0.015),
        cm=(0.0035, 0.0055),
        lai=(2.5, 4.5),
        ala=(48, 62),
        ant=(0, 2),
        row_gap=(0.05, 0.20),
    ),
    6: dict(  # Rice
        n=(1.4, 1.7),
        cab=(30, 48),
        car=(7, 11),
        cbrown=(0, 0.1),
        cw=(0.010, 0.016),
        cm=(0.003, 0.005),
        lai=(1.5, 3.5),
        ala=(58, 72),
        ant=(0, 1),
        row_gap=(0.0, 0.10),
    ),
    9: dict(  # Mixed weed
        n=(1.4, 2.0),
        cab=(20, 55),
        car=(5, 12),
        cbrown=(0, 0.6),
        cw=(0.006, 0.016),
        cm=(0.002, 0.007),
        lai=(0.5, 3.0),
        ala=(35, 70),
        ant=(0, 4),
        row_gap=(0.0, 0.0),
    ),
}
_PARAM_KEYS = ("n", "cab", "car", "cbrown", "cw", "cm", "lai", "ala", "ant")


@dataclass
class _Library:
    spectra: np.ndarray  # (K, B) reflectance in sensor bands
    params: np.ndarray  # (K, P) scaled 0..1, used to give each field its own part of the class
    background: np.ndarray  # (K, B) what shows between crop rows


def _uniform(rng: np.random.Generator, lo_hi: tuple[float, float], n: int) -> np.ndarray:
    return rng.uniform(lo_hi[0], lo_hi[1], n)


def _scaled(columns: list[np.ndarray]) -> np.ndarray:
    x = np.stack(columns, axis=1)
    span = np.ptp(x, axis=0)
    return (x - x.min(axis=0)) / np.where(span > 0, span, 1.0)


def _class_library(cls: int, rng: np.random.Generator, centers: np.ndarray) -> _Library:
    """`LIBRARY_SIZE` 1-nm spectra of one class, resampled to the sensor bands."""
    k = LIBRARY_SIZE
    moist, bright = rng.uniform(0.1, 0.7, k), rng.uniform(0.75, 1.2, k)
    bg = spectra.soil(moist, bright)
    if cls in CROPS:
        ranges = CROPS[cls]
        p = {key: _uniform(rng, ranges[key], k) for key in _PARAM_KEYS}
        if cls == RICE:  # paddy rice: flooded soil under the canopy
            flood = spectra.water(
                rng.uniform(0.05, 0.4, k),
                rng.uniform(0.02, 0.1, k),
                rng.uniform(0.3, 1.5, k),
                np.full(k, 0.01),
            )
            bg = 0.5 * flood + 0.5 * spectra.soil(np.full(k, 0.9), bright)
        refl = spectra.canopy(p, bg)
        cols = [p[key] for key in _PARAM_KEYS]
        if cls == WEED:  # weeds: mixed with soil and dry litter (ECOSTRESS lichen, non-photosynthetic)
            f_soil, f_npv = rng.uniform(0, 0.4, k), rng.uniform(0, 0.3, k)
            refl = (
                (1 - f_soil - f_npv)[:, None] * refl
                + f_soil[:, None] * bg
                + f_npv[:, None] * spectra.lab_spectrum("lichen")
            )
            cols += [f_soil, f_npv]
    elif cls == WATER:
        chl, sed, cdom = rng.uniform(0.05, 0.6, k), rng.uniform(0.005, 0.08, k), rng.uniform(0.2, 1.5, k)
        glint = rng.uniform(0.005, 0.03, k)
        refl, cols = spectra.water(chl, sed, cdom, glint), [chl, sed, cdom, glint]
    elif cls == ROADS:  # concrete roofs and roads, dark asphalt-like lava, dirt
        w = rng.dirichlet((1.2, 0.8, 0.5), k)
        b = rng.uniform(0.7, 1.15, k)
        refl = b[:, None] * (
            w[:, :1] * spectra.lab_spectrum("concrete")
            + w[:, 1:2] * spectra.lab_spectrum("basalt")
            + w[:, 2:] * spectra.soil(np.full(k, 0.2), np.ones(k))
        )
        cols = [w[:, 0], w[:, 1], b]
    elif cls == PLASTIC:  # transparent mulch to white film, over soil or seedlings
        r = rng.uniform(0.05, 0.6, k)
        t = (1 - r) * rng.uniform(0.8, 0.95, k)
        seedlings = {key: _uniform(rng, CROPS[SOYBEAN][key], k) for key in _PARAM_KEYS}
        seedlings["lai"] = rng.uniform(0.2, 1.0, k)
        green = rng.uniform(0, 1, k) < 0.4
        under = np.where(green[:, None], spectra.canopy(seedlings, bg), bg)
        refl, cols = spectra.film(under, r, t), [r, green.astype(float), moist]
    else:  # SOIL: bare soil with some litter and dark stones
        f_npv, f_dark = rng.uniform(0, 0.15, k), rng.uniform(0, 0.25, k)
        moist2, bright2 = rng.uniform(0.0, 0.8, k), rng.uniform(0.6, 1.3, k)
        refl = (
            (1 - f_npv - f_dark)[:, None] * spectra.soil(moist2, bright2)
            + f_npv[:, None] * spectra.lab_spectrum("lichen")
            + f_dark[:, None] * spectra.lab_spectrum("basalt")
        )
        cols = [moist2, bright2, f_npv, f_dark]
    return _Library(
        spectra=spectra.resample(refl, centers, SENSOR_FWHM_NM).astype(np.float32),
        params=_scaled(cols),
        background=spectra.resample(bg, centers, SENSOR_FWHM_NM).astype(np.float32),
    )


@lru_cache(maxsize=4)
def _libraries(seed: int, bands: int) -> dict[int, _Library]:
    """Per-class spectral libraries; cached, since the radiative-transfer runs are the slow part."""
    centers = spectra.sensor_bands(bands)
    seqs = np.random.SeedSequence([seed, 1]).spawn(len(CLASS_NAMES))
    return {
        c: _class_library(c, np.random.default_rng(seqs[c - 1]), centers)
        for c in range(1, len(CLASS_NAMES) + 1)
    }


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    z = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (z - z.mean()) / (z.std() + 1e-12)


def _layout(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[int], np.ndarray]:
    """Objects of the scene: (object id map (H, W), field-path mask, class of each object, shadow mask)."""
    s = np.sqrt(h * w / float(np.prod(DEFAULT_SIZE)))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    obj = np.full((h, w), -1, np.int32)
    classes: list[int] = []

    def add(mask: np.ndarray, cls: int) -> None:
        obj[mask & (obj < 0)] = len(classes)
        classes.append(cls)

    # A river along the right side.
    centre = w * (0.83 + 0.05 * np.sin(2 * np.pi * yy / (1.4 * h) + rng.uniform(0, 2 * np.pi)))
    half = w * (0.07 + 0.015 * np.sin(2 * np.pi * yy / (0.7 * h) + rng.uniform(0, 2 * np.pi)))
    add(np.abs(xx - centre) < half, WATER)
    # A slightly tilted main road, a side road, houses along the main road.
    y_road = rng.uniform(0.35, 0.65) * h + rng.uniform(-0.05, 0.05) * (xx - w / 2)
    road_w = max(2.0, 5.0 * s)
    add(np.abs(yy - y_road) < road_w / 2, ROADS)
    x_road = rng.uniform(0.2, 0.5) * w
    add(np.abs(xx - x_road) < max(1.5, 3.5 * s) / 2, ROADS)
    shadow = np.zeros((h, w), bool)
    n_houses = max(2, round(12 * s))
    for x0 in np.sort(rng.uniform(0, 0.7 * w, n_houses)):
        hh, ww = (int(max(3, v * s)) for v in rng.uniform(7, 14, 2))
        y1 = int(y_road[0, min(int(x0), w - 1)] - road_w / 2 - rng.integers(1, 4))
        r0, c0 = max(0, y1 - hh), int(x0)
        box = (slice(r0, max(r0, y1)), slice(c0, min(w, c0 + ww)))
        if (obj[box] == 0).any():  # not in the river
            continue
        house = np.zeros((h, w), bool)
        house[box] = True
        add(house, ROADS)
        sh = np.zeros((h, w), bool)  # sun from the south-east: shadow to the north-west
        d = max(1, round(3 * s))
        sh[max(0, box[0].start - d) : box[0].stop - d, max(0, box[1].start - d) : max(0, box[1].stop - d)] = (
            True
        )
        shadow |= sh & ~house
    # Fields: Voronoi cells of jittered grid seeds over what is left, separated by 1-pixel paths.
    free = obj < 0
    n_fields = max(2 * len(FIELD_CLASSES), round(h * w / 2600))
    rows = max(1, round(np.sqrt(n_fields * h / w)))
    cols = int(np.ceil(n_fields / rows))
    gy, gx = np.meshgrid(
        (np.arange(rows) + 0.5) * h / rows, (np.arange(cols) + 0.5) * w / cols, indexing="ij"
    )
    seeds = np.stack([gy.ravel(), gx.ravel()], 1) + rng.uniform(-0.35, 0.35, (rows * cols, 2)) * [
        h / rows,
        w / cols,
    ]
    cell = cKDTree(seeds).query(np.stack([yy[free], xx[free]], 1))[1]
    cells = np.full((h, w), -1, np.int64)
    cells[free] = cell
    # Connected pieces of cells (a road may cut one in two) become fields of their own.
    pieces, n_pieces = ndimage.label(free, structure=np.ones((3, 3)))
    field_key = cells * (n_pieces + 1) + pieces
    _, field = np.unique(np.where(free, field_key, -1), return_inverse=True)
    field = field.reshape(h, w) - 1  # -1 where not free
    border = np.zeros((h, w), bool)
    border[:-1] |= (field[:-1] != field[1:]) & (field[:-1] >= 0) & (field[1:] >= 0)
    border[:, :-1] |= (field[:, :-1] != field[:, 1:]) & (field[:, :-1] >= 0) & (field[:, 1:] >= 0)
    n = int(field.max()) + 1
    sizes = np.bincount(field[field >= 0], minlength=n)
    order = np.argsort(-sizes)  # every field class gets one of the large fields first
    assign = np.empty(n, np.int64)
    first = rng.permutation(FIELD_CLASSES)
    p = np.array([FIELD_WEIGHTS[c] for c in FIELD_CLASSES])
    for rank, f in enumerate(order):
        assign[f] = first[rank] if rank < len(first) else rng.choice(FIELD_CLASSES, p=p / p.sum())
    base = len(classes)
    obj[free] = base + field[free]
    classes += [int(c) for c in assign]
    return obj, border, classes, shadow


def make_farmland_scene(size: tuple[int, int] = DEFAULT_SIZE, seed: int = 0, *, bands: int = 270) -> Cube:
    """Generate the SYNTHETIC farmland scene in memory.

    Parameters
    ----------
    size : (H, W)
        Rows and columns; LongKou's 550 x 400 by default, e.g. (64, 64) for tests.
    seed : int
        Everything (layout, spectra, noise) follows from it.
    bands : int
        Sensor bands evenly over 400-1000 nm.

    Returns
    -------
    Cube
        ``data`` float32 reflectance (H, W, B); ``labels`` (H, W) uint8, 0 = unlabelled (field paths and
        pixels less than 70 % one class after the point-spread function); class names `CLASS_NAMES`.
    """
    h, w = (int(v) for v in size)
    if h < 16 or w < 16:
        raise ValueError(f"the farmland scene needs at least 16 x 16 pixels, got {h} x {w}")
    libs = _libraries(int(seed), int(bands))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    obj, border, classes, shadow = _layout(h, w, rng)
    classes_arr = np.asarray(classes)
    cls_map = classes_arr[obj].astype(np.uint8)

    # Pure spectra: each object mixes M library members near its own centre, weighted by smooth fields.
    m = 40
    weights = np.stack([_smooth_noise(rng, (h, w), sigma=rng.uniform(1, 4)) for _ in range(m)], -1)
    weights = np.exp(2.5 * weights)
    weights /= weights.sum(-1, keepdims=True)
    yy, xx = np.mgrid[0:h, 0:w]
    pure = np.empty((h, w, bands), np.float32)
    index = np.argsort(obj.ravel(), kind="stable")
    starts = np.searchsorted(obj.ravel()[index], np.arange(len(classes) + 1))
    for o, cls in enumerate(classes):
        pix = index[starts[o] : starts[o + 1]]
        if pix.size == 0:
            continue
        lib = libs[cls]
        centre = lib.params[rng.integers(len(lib.params))]
        near = np.argsort(((lib.params - centre) ** 2).sum(1))[:m]
        r, c = np.unravel_index(pix, (h, w))
        spec = weights[r, c] @ lib.spectra[near]
        if cls in CROPS and CROPS[cls]["row_gap"][1] > 0:  # crop rows: soil shows between them
            gap = rng.uniform(*CROPS[cls]["row_gap"])
            theta, period = rng.uniform(0, np.pi), rng.uniform(3.0, 6.0)
            phase = 2 * np.pi * (yy.ravel()[pix] * np.sin(theta) + xx.ravel()[pix] * np.cos(theta)) / period
            g = gap * (0.5 + 0.5 * np.sin(phase))[:, None]
            spec = (1 - g) * spec + g * lib.background[near[0]]
        pure[r, c] = spec
    # Field paths: trodden soil with weeds, left unlabelled.
    path_pix = np.flatnonzero(border.ravel())
    mix = rng.uniform(0, 0.6, path_pix.size)[:, None]
    pr, pc = np.unravel_index(path_pix, (h, w))
    soil = libs[SOIL].spectra[rng.integers(LIBRARY_SIZE, size=path_pix.size)]
    weed = libs[WEED].spectra[rng.integers(LIBRARY_SIZE, size=path_pix.size)]
    pure[pr, pc] = (1 - mix) * soil + mix * weed

    # Illumination: slow variation, an across-track (column) gradient, house shadows (bluer skylight).
    wl = spectra.sensor_bands(bands).astype(np.float32)
    illum = 1.0 + 0.06 * _smooth_noise(rng, (h, w), sigma=max(h, w) / 8) + 0.05 * (xx / max(w - 1, 1) - 0.5)
    # Canopies at cm-level pixels: sunlit and shaded leaves from pixel to pixel.
    leafy = np.isin(cls_map, list(CROPS))
    illum *= np.exp(np.where(leafy, 0.15, 0.05) * _smooth_noise(rng, (h, w), sigma=0.7))
    pure *= illum[..., None].astype(np.float32)
    shade = (0.3 + 0.15 * (1000.0 - wl) / 600.0).astype(np.float32)
    pure[shadow] *= shade
    # Sensor: point-spread function (mixed pixels), column gains, signal-dependent noise.
    psf = 0.7
    blurred = ndimage.gaussian_filter(pure, sigma=(psf, psf, 0), mode="nearest")
    del pure
    blurred *= rng.normal(1.0, 0.006, (1, w, bands)).astype(np.float32)
    edge = np.exp(-(wl - 400.0) / 25.0) + np.exp((wl - 1000.0) / 40.0)
    read = (0.010 * (1.0 + 3.0 * edge)).astype(np.float32)
    sigma = np.sqrt(read**2 + 2.5e-4 * np.clip(blurred, 0, None))
    blurred += sigma * rng.standard_normal(blurred.shape, dtype=np.float32)
    np.clip(blurred, 0.0, None, out=blurred)

    # Ground truth: the class that fills >= 70 % of the point-spread function; paths unlabelled.
    frac = np.stack(
        [
            ndimage.gaussian_filter((cls_map == c).astype(np.float32), psf, mode="nearest")
            for c in range(1, len(CLASS_NAMES) + 1)
        ],
        -1,
    )
    labels = (np.argmax(frac, -1) + 1).astype(np.uint8)
    labels[(frac.max(-1) < 0.7) | border] = 0
    return Cube(
        data=blurred,
        wavelengths_nm=wl.astype(np.float64),
        labels=labels,
        class_names=list(CLASS_NAMES),
        meta={
            "description": DESCRIPTION,
            "synthetic": True,
            "seed": int(seed),
            "generator_version": GENERATOR_VERSION,
            "fwhm_nm": np.full(bands, SENSOR_FWHM_NM),
        },
        source=f"{SCENE_NAME} (synthetic, seed {seed})",
    )


def write_demo_scene(
    folder: str | os.PathLike,
    *,
    size: tuple[int, int] = DEFAULT_SIZE,
    seed: int = 0,
    splits: tuple[int, ...] = (25, 50, 100, 300),
) -> dict[str, Path]:
    """Write the SYNTHETIC scene as WHU-Hi-style .mat files and as ENVI, so it loads through the readers.

    Files (stem ``SYNTHETIC_Farmland``): ``<stem>.mat`` (key = stem, uint16 reflectance x 10000, with
    ``wavelengths_nm``, ``reflectance_scale_factor``, ``description``), ``<stem>_gt.mat`` (key
    ``<stem>_gt``, with ``class_names``), ``<stem>.hdr`` + ``.bsq`` (ENVI, same values, wavelengths,
    fwhm, reflectance scale factor), ``<stem>_gt.hdr`` + ``.img`` (ENVI Classification), and
    ``Training samples and test samples/Train<N>.mat`` / ``Test<N>.mat`` (keys ``SFtrain<N>``,
    ``SFtest<N>``) for each N in `splits`, drawn by `engines.hyperspectral.protocol.sample_split`.

    Returns
    -------
    dict
        "mat", "gt_mat", "envi", "gt_envi" -> paths, and "train<N>" / "test<N>".
    """
    from engines.hyperspectral.protocol import sample_split

    out = Path(folder)
    split_dir = out / "Training samples and test samples"
    _refuse_foreign_split_files(split_dir, splits)
    out.mkdir(parents=True, exist_ok=True)
    cube = make_farmland_scene(size, seed)
    stored = np.round(cube.data * REFLECTANCE_SCALE).clip(0, 65535).astype(np.uint16)
    labels = cube.labels
    paths = {
        "mat": out / f"{SCENE_NAME}.mat",
        "gt_mat": out / f"{SCENE_NAME}_gt.mat",
        "envi": out / f"{SCENE_NAME}.hdr",
        "gt_envi": out / f"{SCENE_NAME}_gt.hdr",
    }
    names = np.array(CLASS_NAMES, dtype=object)
    scipy.io.savemat(
        paths["mat"],
        {
            SCENE_NAME: stored,
            "wavelengths_nm": cube.wavelengths_nm,
            "reflectance_scale_factor": REFLECTANCE_SCALE,
            "description": DESCRIPTION,
        },
    )
    scipy.io.savemat(paths["gt_mat"], {f"{SCENE_NAME}_gt": labels, "class_names": names})
    envi.save_image(
        str(paths["envi"]),
        stored,
        dtype=np.uint16,
        interleave="bsq",
        ext=".bsq",
        force=True,
        metadata={
            "description": DESCRIPTION,
            "wavelength": list(cube.wavelengths_nm),
            "fwhm": [SENSOR_FWHM_NM] * cube.shape[2],
            "wavelength units": "Nanometers",
            "reflectance scale factor": REFLECTANCE_SCALE,
            "sensor type": "SYNTHETIC",
        },
    )
    envi.save_classification(
        str(paths["gt_envi"]),
        labels,
        dtype=np.uint8,
        force=True,
        class_names=["Unclassified", *CLASS_NAMES],
        metadata={"description": f"ground truth of the {DESCRIPTION}"},
    )
    split_dir.mkdir(exist_ok=True)
    for n in splits:
        train, test = sample_split(labels, n, seed=seed)
        for kind, lab in (("train", train), ("test", test)):
            path = split_dir / f"{kind.capitalize()}{n}.mat"
            scipy.io.savemat(path, {f"SF{kind}{n}": lab.astype(np.uint8)})
            paths[f"{kind}{n}"] = path
    return paths


def _refuse_foreign_split_files(split_dir: Path, splits: tuple[int, ...]) -> None:
    """InputError naming a Train<N>.mat / Test<N>.mat in `split_dir` that an earlier demo did not write (its
    variable is not SFtrain<N> / SFtest<N>): the real WHU-Hi split files have these names."""
    for n in splits:
        for kind in ("train", "test"):
            path = split_dir / f"{kind.capitalize()}{n}.mat"
            if not path.exists():
                continue
            try:
                variables = [name for name, _, _ in scipy.io.whosmat(str(path))]
            except (ValueError, OSError, NotImplementedError, IndexError):  # v7.3 or not MATLAB: not ours
                variables = []
            if variables != [f"SF{kind}{n}"]:
                raise InputError("a split file the SYNTHETIC demo did not write is here; writing the demo "
                                 "would overwrite it: choose another folder", path)


def cache_folder() -> Path:
    """Where demo files are cached: $TESSERA_CACHE, else ~/.cache/tessera."""
    return Path(os.environ.get("TESSERA_CACHE") or Path.home() / ".cache" / "tessera")


def demo_scene_files(size: tuple[int, int] = DEFAULT_SIZE, seed: int = 0) -> dict[str, Path]:
    """The demo scene's files, written once into the cache and reused (see `write_demo_scene`).

    Written to a temporary folder and renamed into place, so concurrent callers never see half a scene;
    a failed or interrupted build removes its temporary folder.
    """
    h, w = (int(v) for v in size)
    folder = cache_folder() / f"farmland-v{GENERATOR_VERSION}-{h}x{w}-seed{seed}"
    if not (folder / f"{SCENE_NAME}.mat").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
        try:
            write_demo_scene(tmp, size=(h, w), seed=seed)
        except BaseException:  # an error or a stop request: leave no half-written folder in the cache
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        try:
            tmp.rename(folder)
        except OSError:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    return {
        "mat": folder / f"{SCENE_NAME}.mat",
        "gt_mat": folder / f"{SCENE_NAME}_gt.mat",
        "envi": folder / f"{SCENE_NAME}.hdr",
        "gt_envi": folder / f"{SCENE_NAME}_gt.hdr",
        "folder": folder,
    }

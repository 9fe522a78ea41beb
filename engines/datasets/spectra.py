"""Material spectra for SYNTHETIC hyperspectral scenes, from what installed packages ship (DESIGN §5).

Sources, all on prosail's 1-nm grid 400-2500 nm (`PROSAIL_NM`):

- vegetation canopies: PROSPECT-D leaf optics + 4SAIL canopy reflectance (`prosail.run_prosail`);
- soils: prosail's two shipped soil spectra (dry and wet), mixed by moisture and scaled by brightness;
- real lab spectra shipped in `spectral`'s test data, parsed with spectral's own readers: ECOSTRESS
  construction concrete (0598UUUCNC), ECOSTRESS lichen (non-photosynthetic vegetation, VH297), RELAB
  weathered 1979 Etna lava surface (MM-MEM-074-WS; a dark basaltic surface standing in for asphalt);
- water: `spectral` ships no water spectrum, so water is *modelled*: the semi-analytical reflectance of
  Lee et al. (1999) from pure-water absorption (prosail ships it: PROSPECT's specific absorption of liquid
  water, ``kw``), PROSPECT's chlorophyll absorption (``kab``, a stand-in for phytoplankton), CDOM and
  suspended-sediment backscatter;
- plastic film: `spectral` ships no polymer spectrum either; film is *modelled* as a thin, spectrally flat
  scattering layer (polyethylene has no absorption features at 400-1000 nm) over soil or seedlings.

`resample` takes 1-nm spectra to sensor bands with spectral's `BandResampler` (Gaussian responses).
"""

from __future__ import annotations

import os
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
import prosail
import spectral
from spectral.database.ecostress import read_ecostress_file
from spectral.database.relab import read_relab_file

PROSAIL_NM = np.arange(400.0, 2501.0)  # prosail's grid
_TEST_DATA = Path(os.path.dirname(spectral.__file__)) / "tests" / "data"
# name -> (file inside spectral's test data, reader, what it is)
LAB_SPECTRA: dict[str, tuple[str, str, str]] = {
    "concrete": (
        "ecostress/a.spectrum.txt",
        "ecostress",
        "ECOSTRESS 0598UUUCNC: weathered runway construction concrete (lab, DHR)",
    ),
    "lichen": (
        "ecostress/b.spectrum.txt",
        "ecostress",
        "ECOSTRESS VH297: lichen off trees, non-photosynthetic vegetation (lab, BRF)",
    ),
    "basalt": (
        "relab/data/mem/mm/bkr1mm074ws.asc",
        "relab",
        "RELAB MM-MEM-074-WS: weathered surface of 1979 Etna lava (lab, BRF)",
    ),
}


@cache
def lab_spectrum(name: str) -> np.ndarray:
    """A lab spectrum from `LAB_SPECTRA` as reflectance 0..1 on `PROSAIL_NM`, shape (2101,).

    Read with spectral's ECOSTRESS/RELAB readers and linearly interpolated onto the 1-nm grid.
    """
    rel, kind, _ = LAB_SPECTRA[name]
    path = _TEST_DATA / rel
    if not path.is_file():
        raise FileNotFoundError(f"spectral's bundled test spectrum {path} is missing (reinstall spectral)")
    sig = read_ecostress_file(str(path)) if kind == "ecostress" else read_relab_file(str(path))
    x = np.asarray(sig.x, dtype=np.float64)
    y = np.asarray(sig.y, dtype=np.float64)
    x_nm = x * 1000.0 if x.max() < 100 else x  # ECOSTRESS in micrometres, RELAB .asc in nanometres
    if kind == "ecostress":
        y = y / 100.0  # percent
    order = np.argsort(x_nm)
    return np.interp(PROSAIL_NM, x_nm[order], y[order])


def soil(moisture: np.ndarray, brightness: np.ndarray) -> np.ndarray:
    """prosail's soil model: brightness * (moisture' * dry + (1 - moisture') * wet), shape (n, 2101).

    `moisture` in 0..1 (1 = wet); prosail's ``psoil`` is the dry fraction, hence 1 - moisture.
    """
    lib = prosail.spectral_lib.soil
    dry = 1.0 - np.asarray(moisture, dtype=np.float64)[:, None]
    return np.asarray(brightness, dtype=np.float64)[:, None] * (dry * lib.rsoil1 + (1 - dry) * lib.rsoil2)


def canopy(
    params: dict[str, np.ndarray],
    background: np.ndarray,
    *,
    sun_zenith: float = 35.0,
    view_zenith: float = 0.0,
    rel_azimuth: float = 0.0,
) -> np.ndarray:
    """PROSPECT-D + 4SAIL canopy reflectance for n parameter sets, shape (n, 2101).

    Parameters
    ----------
    params : dict of (n,) arrays
        ``n`` (leaf structure), ``cab``, ``car`` (ug/cm2), ``cbrown``, ``cw``, ``cm`` (g/cm2), ``lai``,
        ``ala`` (mean leaf angle, degrees), ``ant`` (anthocyanins, ug/cm2).
    background : ndarray, shape (n, 2101)
        Reflectance under the canopy (soil, wet soil, water).
    """
    out = np.empty((len(params["lai"]), PROSAIL_NM.size))
    for i in range(out.shape[0]):
        out[i] = prosail.run_prosail(
            float(params["n"][i]),
            float(params["cab"][i]),
            float(params["car"][i]),
            float(params["cbrown"][i]),
            float(params["cw"][i]),
            float(params["cm"][i]),
            float(params["lai"][i]),
            float(params["ala"][i]),
            0.01,
            sun_zenith,
            view_zenith,
            rel_azimuth,
            ant=float(params["ant"][i]),
            prospect_version="D",
            typelidf=2,
            rsoil0=background[i],
        )
    return out


def water(chl: np.ndarray, sediment: np.ndarray, cdom: np.ndarray, glint: np.ndarray) -> np.ndarray:
    """Modelled inland-water reflectance (Lee et al. 1999 deep-water form), shape (n, 2101).

    Parameters
    ----------
    chl : (n,) chlorophyll-like absorption at 440 nm (1/m), spectral shape of PROSPECT's ``kab``
    sediment : (n,) particle backscatter at 550 nm (1/m), spectral slope lambda^-1
    cdom : (n,) CDOM absorption at 440 nm (1/m), exponential slope 0.015/nm
    glint : (n,) spectrally flat surface reflection (0..1)
    """
    lib = prosail.spectral_lib.prospectd
    nm = PROSAIL_NM[None, :]
    kab = np.asarray(lib.kab)
    a_w = np.asarray(lib.kw)[None, :] * 100.0  # PROSPECT's kw is in 1/cm
    a = a_w + chl[:, None] * (kab / kab[40])[None, :] + cdom[:, None] * np.exp(-0.015 * (nm - 440.0))
    bb = 0.5 * 0.0038 * (400.0 / nm) ** 4.32 + sediment[:, None] * (550.0 / nm)
    u = bb / (a + bb)
    rrs_below = (0.084 + 0.17 * u) * u
    rrs = 0.52 * rrs_below / (1.0 - 1.7 * rrs_below)
    return np.pi * rrs + glint[:, None]


def film(under: np.ndarray, scatter: np.ndarray, transmit: np.ndarray) -> np.ndarray:
    """Modelled plastic film over a background (adding method for two layers), shape (n, 2101).

    R = r + t^2 R_b / (1 - r R_b) with a flat film reflectance r = `scatter` and transmittance
    t = `transmit` (transparent mulch: r ~ 0.1, t ~ 0.85; white film: r ~ 0.6, t ~ 0.35).
    """
    r = scatter[:, None]
    t = transmit[:, None]
    return r + t**2 * under / (1.0 - r * under)


def sensor_bands(bands: int = 270, range_nm: tuple[float, float] = (400.0, 1000.0)) -> np.ndarray:
    """Band centres of a Nano-Hyperspec-like sensor: `bands` evenly spaced over `range_nm`, shape (B,)."""
    return np.linspace(range_nm[0], range_nm[1], bands)


@lru_cache(maxsize=8)
def _resampling_matrix(centers: tuple[float, ...], fwhm: float) -> np.ndarray:
    """(B, 2101) weights from spectral's BandResampler, each row normalised to sum 1."""
    m = spectral.BandResampler(
        PROSAIL_NM, np.asarray(centers), np.ones(PROSAIL_NM.size), np.full(len(centers), fwhm)
    ).matrix
    m = np.nan_to_num(m)
    return np.ascontiguousarray(m / m.sum(axis=1, keepdims=True))


def resample(spectra: np.ndarray, centers: np.ndarray, fwhm: float = 6.0) -> np.ndarray:
    """1-nm spectra (n, 2101) -> sensor bands (n, B): Gaussian responses of `fwhm` nm (spectral's resampler).

    The response is normalised over the 1-nm samples it covers, so edge bands are not darkened.
    """
    m = _resampling_matrix(tuple(float(c) for c in centers), float(fwhm))
    return np.asarray(spectra, dtype=np.float64) @ m.T

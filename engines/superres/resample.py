"""Interpolation baselines (bicubic, nearest) on the grid of `geometry`, and the degradation models.

Degradations turn a high-resolution batch into its low-resolution version for training and evaluation:
- "bicubic": antialiased bicubic downsampling (torch, Keys a = -0.75, kernel widened by the scale as PIL
  does), the usual super-resolution benchmark degradation;
- "kspace": Fourier (k-space) truncation, what a lower-resolution MR acquisition of the same field of view
  measures: the central low frequencies are kept exactly and resampled on the centre-aligned grid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engines.superres.geometry import output_size, source_positions

DEGRADATIONS = ("bicubic", "kspace")


def _check_batch(x: torch.Tensor) -> None:
    if x.ndim != 4:
        raise ValueError(f"expected a batch (B, C, H, W), got shape {tuple(x.shape)}")


def _grid(h: int, w: int, sx: float, sy: float, out_size: tuple[int, int] | None, device) -> torch.Tensor:
    """grid_sample grid (1, H, W, 2) of the output pixel centres, normalised for align_corners=False."""
    H, W = out_size if out_size is not None else (output_size(h, sy), output_size(w, sx))
    ys = (torch.arange(H, dtype=torch.float64) + 0.5) / sy - 0.5
    xs = (torch.arange(W, dtype=torch.float64) + 0.5) / sx - 0.5
    gy = (2 * ys + 1) / h - 1
    gx = (2 * xs + 1) / w - 1
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1)  # (H, W, 2) as (x, y)
    return grid.unsqueeze(0).to(device=device, dtype=torch.float32)


def upsample_bicubic(
    x: torch.Tensor, sx: float, sy: float, *, out_size: tuple[int, int] | None = None
) -> torch.Tensor:
    """Bicubic upsampling (B, C, h, w) -> (B, C, round(h*sy), round(w*sx)) on the centre-aligned grid.

    Same kernel and edge handling (replicated border) as ``F.interpolate(mode="bicubic",
    align_corners=False)``, which it equals when h*sy and w*sx are whole numbers.
    """
    _check_batch(x)
    grid = _grid(x.shape[2], x.shape[3], sx, sy, out_size, x.device).expand(x.shape[0], -1, -1, -1)
    return F.grid_sample(x, grid.to(x.dtype), mode="bicubic", padding_mode="border", align_corners=False)


def upsample_nearest(
    x: torch.Tensor, sx: float, sy: float, *, out_size: tuple[int, int] | None = None
) -> torch.Tensor:
    """Nearest-neighbour upsampling: each output pixel copies its source pixel (see `geometry`)."""
    _check_batch(x)
    H, W = out_size if out_size is not None else (output_size(x.shape[2], sy), output_size(x.shape[3], sx))
    src_y, _ = source_positions(x.shape[2], sy, H)
    src_x, _ = source_positions(x.shape[3], sx, W)
    return x[:, :, src_y.to(x.device)][:, :, :, src_x.to(x.device)]


def downsample_bicubic(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bicubic downsampling of a batch (B, C, H, W) to (B, C, *size)."""
    _check_batch(x)
    return F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)


def _phase(n: int, m: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Kept frequency indices (|k| < m/2, in FFT order of an m-point transform) and their phase ramp.

    The ramp exp(2 pi i k d / n), d = (n/m - 1)/2, shifts the samples to the centre-aligned grid.
    """
    k = torch.fft.fftfreq(m, d=1.0 / m, device=device).round().long()
    keep = k.abs() < m / 2
    d = (n / m - 1.0) / 2.0
    phase = torch.exp(2j * torch.pi * k.double() * d / n)
    return k, torch.where(keep, phase, torch.zeros_like(phase))


def kspace_truncate(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Fourier truncation of a batch (B, C, H, W) to (B, C, *size): the MR-realistic degradation.

    The output's spectrum is the input's for every frequency |k| < size/2 along each axis, scaled by
    (h*w)/(H*W) so intensities are preserved and phase-shifted so output pixel centres fall on the
    centre-aligned grid; all higher frequencies (and an even size's Nyquist bin) are dropped.
    """
    _check_batch(x)
    H, W = x.shape[2], x.shape[3]
    h, w = size
    if h > H or w > W:
        raise ValueError(f"k-space truncation only reduces the size: {(H, W)} -> {(h, w)}")
    spectrum = torch.fft.fft2(x.double())
    ky, py = _phase(H, h, x.device)
    kx, px = _phase(W, w, x.device)
    kept = spectrum[:, :, ky % H][:, :, :, kx % W] * (py[:, None] * px[None, :])
    out = torch.fft.ifft2(kept).real * (h * w) / (H * W)
    return out.to(x.dtype)


def degrade(x: torch.Tensor, size: tuple[int, int], kind: str = "bicubic") -> torch.Tensor:
    """Low-resolution version of a batch (B, C, H, W) at `size` by degradation `kind` (DEGRADATIONS)."""
    if kind == "bicubic":
        return downsample_bicubic(x, size)
    if kind == "kspace":
        return kspace_truncate(x, size)
    raise ValueError(f"unknown degradation {kind!r}; expected one of {DEGRADATIONS}")

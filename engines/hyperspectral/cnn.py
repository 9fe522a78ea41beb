"""A spectral-spatial CNN in the HybridSN style (3-D convolutions, then 2-D), on PCA-reduced cubes.

HybridSN (Roy et al. 2020) classifies the centre pixel of a patch: PCA to ~30 components, three 3-D
convolutions that learn joint spectral-spatial features, a 2-D convolution over the stacked spectral
feature maps, and fully connected layers. Here every convolution is *unpadded* and the fully connected
layers are 1x1 convolutions, so the same network that is trained on `patch` x `patch` inputs (output
1 x 1) runs over a whole (padded) scene at once and gives every pixel exactly the answer its own patch
would: full-scene prediction shares all the work between neighbouring patches.

The PCA is fitted on the training pixels only; the components are standardised with training statistics.
Training augments patches with the eight flips/rotations, illumination scaling (applied exactly in PCA
space) and noise. Nothing ever looks at test labels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from sklearn.decomposition import PCA
from torch import nn
from torch.nn import functional as F

from engines.errors import InputError
from engines.hyperspectral.classifiers import training_pixels
from engines.hyperspectral.protocol import Progress, Stop, report, row_blocks
from engines.label_maps import map_dtype


class SpectralSpatialBlock(nn.Module):
    """Unpadded 3-D convolution over (bands, rows, cols) + BatchNorm + ReLU, input (N, C, D, H, W).

    The 3-D convolution is computed as one 2-D convolution over the C * D stacked band planes with a
    banded (Toeplitz) weight built from the 3-D kernel: the same numbers as `torch.nn.functional.conv3d`
    (tested), but 3-5 times faster on CPU, where PyTorch's 3-D convolution has no fast path.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int, int]) -> None:
        super().__init__()
        if min(kernel) < 1 or in_channels < 1 or out_channels < 1:
            raise ValueError(f"kernel and channels must be >= 1, got {kernel}, {in_channels}, {out_channels}")
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *kernel))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)  # as nn.Conv3d initialises
        self.norm = nn.BatchNorm3d(out_channels)

    def banded_weight(self, depth: int) -> torch.Tensor:
        """The (O * D_out, I * depth, kh, kw) 2-D weight equivalent to the 3-D kernel on `depth` bands."""
        o, i, kd, kh, kw = self.weight.shape
        d_out = depth - kd + 1
        w2 = self.weight.new_zeros(o, d_out, i, depth, kh, kw)
        j = torch.arange(d_out)
        for t in range(kd):
            w2[:, j, :, j + t] = self.weight[:, :, t].unsqueeze(0).expand(d_out, o, i, kh, kw)
        return w2.reshape(o * d_out, i * depth, kh, kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, d, h, w = x.shape
        o, _, kd, kh, kw = self.weight.shape
        if d < kd:
            raise ValueError(f"need at least {kd} bands, got {d}")
        y = F.conv2d(x.reshape(n, c * d, h, w), self.banded_weight(d))
        return torch.relu(self.norm(y.reshape(n, o, d - kd + 1, h - kh + 1, w - kw + 1)))


class SpatialBlock(nn.Module):
    """Conv2d (unpadded) + BatchNorm2d + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.norm(self.conv(x)))


class HybridSN(nn.Module):
    """HybridSN-style network, fully convolutional.

    Parameters
    ----------
    in_bands : int
        PCA components of the input.
    n_classes : int
        Output classes.
    patch : int
        Odd patch side; the network maps (N, 1, in_bands, patch + k, patch + k) to
        (N, n_classes, 1 + k, 1 + k) for any k >= 0.
    channels_3d : three ints
        Channels of the 3-D blocks, kernels (7, 3, 3), (5, 3, 3), (3, 3, 3) as in HybridSN.
    channels_2d : int
        Channels of the 2-D blocks (3 x 3 kernels) that shrink the rest of the patch to one pixel.
    hidden : int
        Width of the fully connected (1 x 1) layer.
    dropout : float
        Dropout before the classifier.
    """

    SPECTRAL_KERNELS = (7, 5, 3)

    def __init__(
        self,
        in_bands: int,
        n_classes: int,
        *,
        patch: int = 11,
        channels_3d: tuple[int, int, int] = (8, 16, 16),
        channels_2d: int = 64,
        hidden: int = 128,
        dropout: float = 0.4,
    ) -> None:
        super().__init__()
        if patch < 9 or patch % 2 == 0:
            raise ValueError(f"patch must be odd and >= 9 (three 3-D and one 2-D 3x3 layers), got {patch}")
        if in_bands < sum(self.SPECTRAL_KERNELS) - 2:
            raise ValueError(f"in_bands must be >= {sum(self.SPECTRAL_KERNELS) - 2}, got {in_bands}")
        if n_classes < 2:
            raise ValueError(f"n_classes must be >= 2, got {n_classes}")
        c1, c2, c3 = channels_3d
        self.spectral = nn.Sequential(
            SpectralSpatialBlock(1, c1, (7, 3, 3)),
            SpectralSpatialBlock(c1, c2, (5, 3, 3)),
            SpectralSpatialBlock(c2, c3, (3, 3, 3)),
        )
        depth = in_bands - sum(k - 1 for k in self.SPECTRAL_KERNELS)
        n_2d = (patch - 1) // 2 - 3  # 3x3 layers left to reach one pixel
        layers = [SpatialBlock(c3 * depth, channels_2d, 3)]
        layers += [SpatialBlock(channels_2d, channels_2d, 3) for _ in range(n_2d - 1)]
        self.spatial = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Conv2d(channels_2d, hidden, 1), nn.ReLU(), nn.Dropout(dropout), nn.Conv2d(hidden, n_classes, 1)
        )
        self.patch = patch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.spectral(x)
        n, c, d, h, w = f.shape
        return self.head(self.spatial(f.reshape(n, c * d, h, w)))


@dataclass
class CNNSettings:
    """Training settings (the defaults are the benchmark's)."""

    components: int = 30
    patch: int = 11
    steps: int = 500
    batch: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-3
    label_smoothing: float = 0.05
    brightness: float = 0.1  # illumination scale drawn in 1 +- brightness
    noise: float = 0.05  # Gaussian noise (standardised component units)
    tile_rows: int = 32


class CNNClassifier:
    """Patch-based spectral-spatial classifier: PCA (training pixels) + `HybridSN`, trained with AdamW."""

    name = "cnn"

    def __init__(self, *, seed: int = 0, quick: bool = False, settings: CNNSettings | None = None) -> None:
        self.seed = seed
        self.settings = settings or (CNNSettings(steps=30, batch=16) if quick else CNNSettings())
        self.net: HybridSN | None = None

    # --- PCA image of the scene ---------------------------------------------------------------------
    def _fit_pca(self, x: np.ndarray) -> None:
        d = min(self.settings.components, x.shape[1], x.shape[0] - 1)
        self.pca = PCA(n_components=d, random_state=self.seed).fit(x)
        z = self.pca.transform(x)
        self.z_mean, self.z_std = z.mean(0), z.std(0) + 1e-6
        # A spectrum scaled by s maps to s * z + (s - 1) * offset: brightness augmentation in PCA space.
        self.z_offset = (self.pca.mean_ @ self.pca.components_.T + self.z_mean) / self.z_std

    def _scene_components(
        self, data, keep: np.ndarray, progress: Progress | None, stop: Stop | None
    ) -> np.ndarray:
        """Standardised PCA image (H + p - 1, W + p - 1, d) float32, reflect-padded by p // 2; pixels
        without data (non-finite values) are 0, the training mean, so they add nothing to their neighbours'
        patches.

        Not kept between fit and predict, so prediction time counts the whole path from cube to map.
        """
        h, w = int(data.shape[0]), int(data.shape[1])
        z = np.empty((h, w, self.pca.n_components_), np.float32)
        for r0, block in row_blocks(data, keep, rows=32, progress=progress, stop=stop, stage="PCA"):
            flat = block.reshape(-1, block.shape[-1])
            measured = np.isfinite(flat).all(axis=1)
            flat = np.where(measured[:, None], flat, self.pca.mean_.astype(np.float32))
            standard = (self.pca.transform(flat) - self.z_mean) / self.z_std
            standard[~measured] = 0.0
            z[r0 : r0 + block.shape[0]] = standard.reshape(block.shape[0], w, -1)
        half = self.settings.patch // 2
        return np.pad(z, ((half, half), (half, half), (0, 0)), mode="reflect")

    # --- training -------------------------------------------------------------------------------------
    def fit(
        self,
        data,
        train: np.ndarray,
        keep: np.ndarray,
        *,
        progress: Progress | None = None,
        stop: Stop | None = None,
    ) -> CNNClassifier:
        """Fit PCA on the training spectra, then train the network on patches around training pixels."""
        s = self.settings
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        x, y = training_pixels(data, train, keep)
        need = sum(HybridSN.SPECTRAL_KERNELS) - 2  # principal components its 3-D convolutions span
        if min(s.components, x.shape[0] - 1, x.shape[1]) < need <= s.components:
            raise InputError(
                f"the CNN needs at least {need + 1} training pixels in all and {need} usable bands (its 3-D "
                f"convolutions span {need} principal components); got {x.shape[0]} pixels and "
                f"{x.shape[1]} bands: train on more pixels per class, or use svm or gmlc"
            )
        self._fit_pca(x)
        self.classes = np.unique(y)
        scene = self._scene_components(data, keep, progress, stop)
        rows, cols = np.nonzero(train > 0)  # row-major, as training_pixels
        patches = np.stack([scene[r : r + s.patch, c : c + s.patch] for r, c in zip(rows, cols, strict=True)])
        patches = torch.from_numpy(np.ascontiguousarray(patches.transpose(0, 3, 1, 2)))  # (n, d, p, p)
        target = torch.from_numpy(np.searchsorted(self.classes, y))
        offset = torch.from_numpy(self.z_offset.astype(np.float32))[None, :, None, None]
        self.net = HybridSN(patches.shape[1], len(self.classes), patch=s.patch)
        gen = torch.Generator().manual_seed(self.seed)
        self.net.train()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # batches of 32 small patches: thread hand-offs cost more than they save
        try:
            self._train(patches, target, offset, rng, gen, progress, stop)
        finally:
            torch.set_num_threads(threads)
        self.net.eval()
        return self

    def _train(
        self,
        patches: torch.Tensor,
        target: torch.Tensor,
        offset: torch.Tensor,
        rng: np.random.Generator,
        gen: torch.Generator,
        progress: Progress | None,
        stop: Stop | None,
    ) -> None:
        s = self.settings
        opt = torch.optim.AdamW(self.net.parameters(), lr=s.lr, weight_decay=s.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=s.lr, total_steps=max(s.steps, 1))
        loss_fn = nn.CrossEntropyLoss(label_smoothing=s.label_smoothing)
        for step in range(s.steps):
            idx = torch.from_numpy(rng.integers(0, len(target), s.batch))
            xb = patches[idx]
            k = int(rng.integers(4))
            xb = torch.rot90(xb, k, dims=(2, 3))
            if rng.random() < 0.5:
                xb = torch.flip(xb, dims=(3,))
            scale = 1 + s.brightness * (2 * torch.rand(len(idx), 1, 1, 1, generator=gen) - 1)
            xb = scale * xb + (scale - 1) * offset + s.noise * torch.randn(xb.shape, generator=gen)
            loss = loss_fn(self.net(xb[:, None])[:, :, 0, 0], target[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            report(progress, stop, "training", step + 1, s.steps)

    # --- prediction -----------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(
        self,
        data,
        keep: np.ndarray,
        *,
        mask: np.ndarray | None = None,
        progress: Progress | None = None,
        stop: Stop | None = None,
    ) -> np.ndarray:
        """Class map (H, W), uint8 unless a class id needs more: the network slides over the padded PCA
        image, `tile_rows` rows a time."""
        scene = self._scene_components(data, keep, progress, stop)
        p, t = self.settings.patch, self.settings.tile_rows
        h, w = scene.shape[0] - p + 1, scene.shape[1] - p + 1
        out = np.zeros((h, w), map_dtype(self.classes))
        self.net.eval()
        for r0 in range(0, h, t):
            r1 = min(h, r0 + t)
            if mask is None or mask[r0:r1].any():
                tile = torch.from_numpy(np.ascontiguousarray(scene[r0 : r1 + p - 1].transpose(2, 0, 1)))[
                    None, None
                ]
                out[r0:r1] = self.classes[self.net(tile)[0].argmax(0).numpy()]
            report(progress, stop, "predicting", r1, h)
        return out if mask is None else np.where(mask, out, 0).astype(out.dtype)

    def describe(self) -> dict:
        """Settings and network size, for reports and model cards."""
        n = sum(p.numel() for p in self.net.parameters()) if self.net is not None else None
        return {**asdict(self.settings), "parameters": n}

"""Arbitrary-scale super-resolution network: EDSR-lite features + Meta-SR meta-upscale (MIASSR-style).

Built from small named blocks so `MetaSR.forward` reads like the paper's figure:
``features = EDSRFeatures(x)``; ``residual = MetaUpscale(features, sx, sy)``; output = bicubic(x) + residual.
The meta-upscale asks `Pos2Weight` (an MLP) for the weights of a 3x3 convolution over each output pixel's
source-pixel features, given the pixel's sub-pixel offset and the inverse scale per axis
(offset_y, offset_x, 1/sy, 1/sx) -> C*3*3 weights per output channel. The offsets only depend on the
output row (y) and column (x), and repeat with the scale's period (5 values per axis at x2.5), so weights are
computed once per unique (row offset, column offset) pair, never per pixel. A scale p/q with a large p
(x3.999, x3.14159, a ratio of spacings) has up to one offset per output row and column: then the table is
never built whole (see `MetaUpscale`), so time and memory stay close to those of a nearby round scale.
The global bicubic skip (not in MIASSR) lets the network learn only the detail bicubic misses, which
converges much faster on a CPU budget.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engines.superres.geometry import output_size, source_positions
from engines.superres.resample import upsample_bicubic

# Elements (floats) of one chunk of gathered per-pixel features, weights or hidden activations in the
# pixel and factored paths (32 MB), and the most a whole weight table may hold in the pixel path.
_CHUNK_ELEMENTS = 2**23
# The row-class path is used for at most this many row offset classes (one loop step each) and while it
# costs at most this many times the per-pixel work (column classes / sx).
_ROWS_PATH_MAX_CLASSES = 64
_ROWS_PATH_MAX_RATIO = 16
# The dense path (one convolution of all features with every offset pair's filter) is used while it costs
# at most this many times the per-pixel work (offset pairs / (sx * sy)): every 0.5 step from 1.5 to 4.
_DENSE_PATH_MAX_RATIO = 4


def _positive_int(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


class ResBlock(nn.Module):
    """EDSR residual block (no normalisation): x + res_scale * conv(relu(conv(x)))."""

    def __init__(self, channels: int, kernel_size: int = 3, res_scale: float = 1.0) -> None:
        super().__init__()
        _positive_int("channels", channels)
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        if not res_scale > 0:
            raise ValueError(f"res_scale must be positive, got {res_scale}")
        pad = kernel_size // 2
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size, padding=pad),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, kernel_size, padding=pad),
        )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.body(x)


class EDSRFeatures(nn.Module):
    """EDSR-lite feature extractor (B, in_channels, h, w) -> (B, n_feats, h, w), same resolution."""

    def __init__(
        self, in_channels: int = 1, n_feats: int = 64, n_resblocks: int = 16, res_scale: float = 1.0
    ) -> None:
        super().__init__()
        _positive_int("in_channels", in_channels)
        _positive_int("n_feats", n_feats)
        _positive_int("n_resblocks", n_resblocks)
        self.head = nn.Conv2d(in_channels, n_feats, 3, padding=1)
        self.body = nn.Sequential(
            *[ResBlock(n_feats, 3, res_scale) for _ in range(n_resblocks)],
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.head(x)
        return head + self.body(head)


class Pos2Weight(nn.Module):
    """Meta-SR weight prediction: (offset_y, offset_x, 1/sy, 1/sx) -> conv weights (out, C, k, k)."""

    def __init__(self, in_channels: int, out_channels: int = 1, kernel_size: int = 3, hidden: int = 256):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("hidden", hidden)):
            _positive_int(name, value)
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.fan_in = in_channels * kernel_size * kernel_size
        self.mlp = nn.Sequential(
            nn.Linear(4, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, out_channels * in_channels * kernel_size * kernel_size),
        )
        # Start at zero weights, so an untrained MetaSR outputs exactly its bicubic skip.
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, offset_y: torch.Tensor, offset_x: torch.Tensor, sx: float, sy: float) -> torch.Tensor:
        """Weights for every (row offset, column offset) pair: (Uy,), (Ux,) -> (Uy, Ux, out, C, k, k)."""
        uy, ux = offset_y.numel(), offset_x.numel()
        grid_y, grid_x = torch.meshgrid(offset_y, offset_x, indexing="ij")
        inv = offset_y.new_tensor([1.0 / sy, 1.0 / sx]).expand(uy, ux, 2)
        code = torch.cat([grid_y[..., None], grid_x[..., None], inv], dim=-1)
        # Divided by the fan-in C*k*k so Adam's per-weight steps do not grow with the number of taps
        # (without it the first update of a 64-channel model moves the output by ~0.5).
        return self.mlp(code).view(uy, ux, *self.shape) / self.fan_in

    def hidden_parts(self, offset_y: torch.Tensor, offset_x: torch.Tensor, sx: float, sy: float
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """The first layer split by axis: (Uy, hidden), (Ux, hidden) whose sums, through the ReLU, are the
        hidden activations of each (row offset, column offset) pair (the first layer is linear)."""
        first = self.mlp[0]
        inv = offset_y.new_tensor([0.0, 0.0, 1.0 / sy, 1.0 / sx])
        part_y = offset_y[:, None] * first.weight[:, 0]
        part_x = offset_x[:, None] * first.weight[:, 1] + F.linear(inv, first.weight, first.bias)
        return part_y, part_x

    def output_filters(self) -> torch.Tensor:
        """The last layer as k x k filters: (out * (hidden + 1), C, k, k); filter (o, j) maps features to
        the o-th output's weight-space coordinate j (j = hidden: the bias), divided by the fan-in."""
        last = self.mlp[-1]
        out, c, k, _ = self.shape
        w = last.weight.view(out, c * k * k, -1).transpose(1, 2)  # (out, hidden, C*k*k)
        w = torch.cat([w, last.bias.view(out, 1, c * k * k)], dim=1)
        return (w / self.fan_in).reshape(-1, c, k, k)


class MetaUpscale(nn.Module):
    """Meta-upscale: per-output-pixel k x k convolution over the source pixel's features.

    (B, C, h, w) -> (B, out_channels, round(h*sy), round(w*sx)). The weights come from `weight_net`
    (default a `Pos2Weight`), called once per unique (row offset, column offset) pair. Exact ways to
    apply them, chosen by cost ("auto"): when there are few offset pairs (x2, x2.5, x4, ...), one dense
    convolution with every pair's filter, then a gather ("dense"); for periodic offset patterns (scales
    p/q with small p, e.g. every 0.1 step), dense convolutions of each row class's source rows with one
    filter per column class, then a gather ("rows"); otherwise a per-pixel gather in chunks of output rows
    ("pixel"), whose weight table is built per chunk when the whole one would exceed `_CHUNK_ELEMENTS`.
    With a `Pos2Weight` and more offset pairs than input pixels (a scale p/q with large p: x3.999 has one
    offset per output row and column), "factored" never builds the table: the last Linear layer is applied
    to the features instead (a convolution with hidden + 1 filters per output channel), and each output
    pixel takes the dot product of its pair's hidden activations with its source pixel's responses, in
    chunks of output rows. Every intermediate then stays within about `_CHUNK_ELEMENTS` floats (beside the
    features and the output), whatever the scale. The feature border is replicated.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 1,
        kernel_size: int = 3,
        hidden: int = 256,
        weight_net: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.weight_net = weight_net or Pos2Weight(in_channels, out_channels, kernel_size, hidden)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size

    def forward(
        self, feats: torch.Tensor, sx: float, sy: float, *, path: str = "auto"
    ) -> torch.Tensor:
        if feats.ndim != 4 or feats.shape[1] != self.in_channels:
            raise ValueError(f"expected features (B, {self.in_channels}, h, w), got {tuple(feats.shape)}")
        if path not in ("auto", "dense", "rows", "pixel", "factored"):
            raise ValueError(f"path must be 'auto', 'dense', 'rows', 'pixel' or 'factored', got {path!r}")
        factorable = isinstance(self.weight_net, Pos2Weight)
        if path == "factored" and not factorable:
            raise ValueError("the factored path needs a Pos2Weight weight_net")
        b, h, w = feats.shape[0], feats.shape[2], feats.shape[3]
        src_y, off_y = source_positions(h, sy)
        src_x, off_x = source_positions(w, sx)
        uniq_y, cls_y = torch.unique(off_y, return_inverse=True)
        uniq_x, cls_x = torch.unique(off_x, return_inverse=True)
        dev = feats.device
        uniq_y, uniq_x = uniq_y.to(dev, feats.dtype), uniq_x.to(dev, feats.dtype)
        pad = self.kernel_size // 2
        padded = F.pad(feats, (pad, pad, pad, pad), mode="replicate")
        index = (src_y.to(dev), src_x.to(dev), cls_y.to(dev), cls_x.to(dev))
        pairs = uniq_y.numel() * uniq_x.numel()
        cheap_dense = pairs <= _DENSE_PATH_MAX_RATIO * sx * sy
        cheap_rows = uniq_y.numel() <= _ROWS_PATH_MAX_CLASSES and uniq_x.numel() <= _ROWS_PATH_MAX_RATIO * sx
        if path == "dense" or (path == "auto" and cheap_dense):
            return self._dense_path(padded, self.weight_net(uniq_y, uniq_x, sx, sy), *index)
        if path == "rows" or (path == "auto" and cheap_rows):
            return self._rows_path(padded, self.weight_net(uniq_y, uniq_x, sx, sy), *index)
        # the factored path does the MLP's last layer once per input pixel, the table once per pair
        if path == "factored" or (path == "auto" and factorable and b * h * w < pairs):
            return self._factored_path(padded, uniq_y, uniq_x, sx, sy, *index)
        return self._pixel_path(padded, uniq_y, uniq_x, sx, sy, *index)

    def _dense_path(self, padded, table, src_y, src_x, cls_y, cls_x) -> torch.Tensor:
        """Convolve all features with every (row, column) offset pair's filter, then gather per pixel.

        Work is (offset pairs / (sx * sy)) times the per-pixel work, in one dense convolution.
        """
        k = self.kernel_size
        b, c = padded.shape[:2]
        uy, ux, out = table.shape[:3]
        resp = F.conv2d(padded, table.reshape(uy * ux * out, c, k, k))
        resp = resp.view(b, uy, ux, out, resp.shape[2], resp.shape[3])
        # advanced indices on dims 1, 2, 4, 5 broadcast to (H, W) and come first: (H, W, B, out)
        picked = resp[:, cls_y[:, None], cls_x[None, :], :, src_y[:, None], src_x[None, :]]
        return picked.permute(2, 3, 0, 1)

    def _rows_path(self, padded, table, src_y, src_x, cls_y, cls_x) -> torch.Tensor:
        """Per row offset class: convolve its source rows with one filter per column class, then gather.

        Work is (column classes / sx) times the per-pixel work, done by dense convolutions.
        """
        k = self.kernel_size
        b, c, _, wp = padded.shape
        uy, ux, out = table.shape[:3]
        taps = torch.arange(k, device=padded.device)
        rows, pieces = [], []
        for a in range(uy):
            out_rows = (cls_y == a).nonzero().squeeze(1)
            band = padded[:, :, src_y[out_rows][:, None] + taps]  # (B, C, n, k, w + 2p)
            n = out_rows.numel()
            band = band.permute(0, 2, 1, 3, 4).reshape(b * n, c, k, wp)
            resp = F.conv2d(band, table[a].reshape(ux * out, c, k, k)).view(b, n, ux, out, -1)
            pieces.append(resp[:, :, cls_x, :, src_x].permute(1, 3, 2, 0))  # (B, out, n, W)
            rows.append(out_rows)
        order = torch.argsort(torch.cat(rows))
        return torch.cat(pieces, dim=2)[:, :, order]

    def _pixel_path(self, padded, uniq_y, uniq_x, sx, sy, src_y, src_x, cls_y, cls_x) -> torch.Tensor:
        """Gather each pixel's k x k source neighbourhood and its pair's weights, chunk by output rows.

        The weight table is built whole when it holds at most `_CHUNK_ELEMENTS` floats, else per chunk for
        the chunk's row offsets only (at most its rows x column offsets pairs).
        """
        k = self.kernel_size
        b = padded.shape[0]
        w = padded.shape[3] - 2 * (k // 2)
        unfolded = F.unfold(padded, k)  # (B, C*k*k, h*w)
        n_k = unfolded.shape[1]
        width = src_x.numel()
        weights = None
        if uniq_y.numel() * uniq_x.numel() * self.out_channels * n_k <= _CHUNK_ELEMENTS:
            weights = self.weight_net(uniq_y, uniq_x, sx, sy).flatten(3)  # (Uy, Ux, out, C*k*k)
        per_row = width * n_k * max(b, self.out_channels)
        rows = max(1, _CHUNK_ELEMENTS // per_row)
        chunks = []
        for r0 in range(0, src_y.numel(), rows):
            ys = slice(r0, r0 + rows)
            pos = (src_y[ys, None] * w + src_x[None, :]).flatten()
            feats = unfolded[:, :, pos]  # (B, C*k*k, n*W)
            if weights is None:
                needed, row_cls = torch.unique(cls_y[ys], return_inverse=True)
                table = self.weight_net(uniq_y[needed], uniq_x, sx, sy).flatten(3)
                wpix = table[row_cls][:, cls_x].flatten(0, 1)  # (n*W, out, C*k*k)
            else:
                wpix = weights[cls_y[ys]][:, cls_x].flatten(0, 1)
            chunks.append(torch.einsum("bkp,pok->bop", feats, wpix).view(b, -1, pos.numel() // width, width))
        return torch.cat(chunks, dim=2)

    def _factored_path(self, padded, uniq_y, uniq_x, sx, sy, src_y, src_x, cls_y, cls_x) -> torch.Tensor:
        """Pos2Weight's last layer applied to the features, then a dot product per pixel over hidden units.

        output[o, pixel] = sum_j feats[j, source] * (W2 relu(hidden(pair)) + b2)[o, j] / fan_in
                         = sum_h relu(hidden(pair))_h * (W2^T feats)[o, h, source] + (b2 . feats)[o, source],
        where W2^T feats is a convolution of the features with (hidden + 1) filters per output channel,
        done per block of source rows (at most `_CHUNK_ELEMENTS` floats of responses); the dot products go
        by smaller chunks of output rows. The hidden activations come from the per-axis halves of the
        (linear) first layer: one (hidden,) vector per output row and per output column.
        """
        net = self.weight_net
        k = self.kernel_size
        b, _, hp, wp = padded.shape
        out = self.out_channels
        filters = net.output_filters()  # (out * (H + 1), C, k, k)
        n_hidden = filters.shape[0] // out - 1
        part_y, part_x = net.hidden_parts(uniq_y, uniq_x, sx, sy)
        part_y, part_x = part_y[cls_y], part_x[cls_x]  # (out_h, H), (out_w, H)
        width = src_x.numel()
        # hidden units last, so every gather below copies runs of (hidden + 1) floats
        padded = padded.contiguous(memory_format=torch.channels_last)
        block = max(1, _CHUNK_ELEMENTS // (b * out * (n_hidden + 1) * (wp - k + 1)))  # source rows
        # gathered responses and activations of one chunk: small enough to stay in cache
        rows = max(1, _CHUNK_ELEMENTS // 8 // (width * (n_hidden + 1) * (b * out + 1)))
        ends = torch.cumsum(torch.bincount(src_y, minlength=hp - k + 1), 0).tolist()
        in_place = not torch.is_grad_enabled()
        pieces = []
        for s0 in range(0, hp - k + 1, block):
            s1 = min(s0 + block, hp - k + 1)
            r_start, r_end = ends[s0 - 1] if s0 else 0, ends[s1 - 1]
            if r_end == r_start:
                continue
            resp = F.conv2d(padded[:, :, s0:s1 + k - 1], filters).permute(0, 2, 3, 1)  # (B, m, w, out*(H+1))
            for r0 in range(r_start, r_end, rows):
                r1 = min(r0 + rows, r_end)
                g = resp.index_select(1, src_y[r0:r1] - s0).index_select(2, src_x)
                g = g.view(b, r1 - r0, width, out, n_hidden + 1)
                act = (part_y[r0:r1, None, :] + part_x[None, :, :]).relu_()[:, :, None, :]  # (n, W, 1, H)
                prod = g[..., :n_hidden].mul_(act) if in_place else g[..., :n_hidden] * act
                pieces.append((prod.sum(-1) + g[..., n_hidden]).permute(0, 3, 1, 2))  # (B, out, n, W)
        return torch.cat(pieces, dim=2)


class MetaSR(nn.Module):
    """The arbitrary-scale super-resolution network (grey slices in, grey slices out).

    forward(x (B, 1, h, w), sx, sy) -> (B, 1, round(h*sy), round(w*sx)); sx scales columns (x),
    sy rows (y). `config` holds the hyper-parameters the model card records.
    """

    def __init__(
        self,
        in_channels: int = 1,
        n_feats: int = 64,
        n_resblocks: int = 16,
        mlp_hidden: int = 256,
        res_scale: float = 1.0,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        self.config = {"in_channels": in_channels, "n_feats": n_feats, "n_resblocks": n_resblocks,
                       "mlp_hidden": mlp_hidden, "res_scale": res_scale, "kernel_size": kernel_size}
        self.features = EDSRFeatures(in_channels, n_feats, n_resblocks, res_scale)
        self.upscale = MetaUpscale(n_feats, in_channels, kernel_size, mlp_hidden)

    def forward(self, x: torch.Tensor, sx: float, sy: float) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.config["in_channels"]:
            raise ValueError(f"expected (B, {self.config['in_channels']}, h, w), got {tuple(x.shape)}")
        size = (output_size(x.shape[2], sy), output_size(x.shape[3], sx))
        return upsample_bicubic(x, sx, sy, out_size=size) + self.upscale(self.features(x), sx, sy)


class PatchDiscriminator(nn.Module):
    """Small patch discriminator with spectral norm: (B, C, H, W) -> (logits (B, 1, h', w'), features).

    The intermediate feature maps also serve the feature-matching perceptual loss, so no pretrained
    (downloaded) network is needed.
    """

    def __init__(self, in_channels: int = 1, base: int = 32, n_layers: int = 3) -> None:
        super().__init__()
        _positive_int("in_channels", in_channels)
        _positive_int("base", base)
        _positive_int("n_layers", n_layers)
        sn = nn.utils.parametrizations.spectral_norm
        layers, ch = [], in_channels
        for i in range(n_layers):
            out = base * 2**i
            stride = 2 if i < n_layers - 1 else 1
            layers.append(nn.Sequential(sn(nn.Conv2d(ch, out, 4 if stride == 2 else 3, stride, 1)),
                                        nn.LeakyReLU(0.2, inplace=True)))
            ch = out
        self.blocks = nn.ModuleList(layers)
        self.head = sn(nn.Conv2d(ch, 1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return self.head(x), feats


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

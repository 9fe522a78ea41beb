"""MetaSR network: shapes (table), meta-upscale exactness against torch's interpolation, bad arguments."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from engines.superres.model import (
    EDSRFeatures,
    MetaSR,
    MetaUpscale,
    PatchDiscriminator,
    Pos2Weight,
    ResBlock,
    count_parameters,
)

torch.set_num_threads(1)

# (model kwargs, input shape (B, 1, h, w), sx, sy, expected output shape)
SHAPE_CASES = [
    ({"n_feats": 8, "n_resblocks": 1, "mlp_hidden": 16}, (1, 1, 10, 12), 2.0, 2.0, (1, 1, 20, 24)),
    ({"n_feats": 8, "n_resblocks": 2, "mlp_hidden": 16}, (2, 1, 10, 12), 2.5, 2.5, (2, 1, 25, 30)),
    ({"n_feats": 8, "n_resblocks": 1, "mlp_hidden": 16}, (1, 1, 7, 9), 1.3, 3.7, (1, 1, 26, 12)),
    ({"n_feats": 4, "n_resblocks": 1, "mlp_hidden": 8}, (1, 1, 11, 5), 4.0, 1.0, (1, 1, 11, 20)),
    ({"n_feats": 4, "n_resblocks": 1, "mlp_hidden": 8}, (3, 1, 9, 9), 1.0, 1.1, (3, 1, 10, 9)),
    ({"n_feats": 4, "n_resblocks": 1, "mlp_hidden": 8}, (1, 1, 13, 6), 2.537, 3.14, (1, 1, 41, 15)),
]


@pytest.mark.parametrize(("kwargs", "shape", "sx", "sy", "expected"), SHAPE_CASES)
def test_metasr_shapes(kwargs, shape, sx, sy, expected):
    model = MetaSR(**kwargs).eval()
    with torch.no_grad():
        out = model(torch.rand(shape), sx, sy)
    assert tuple(out.shape) == expected
    # output size = round(in * s) per axis
    assert expected[2:] == (int(shape[2] * sy + 0.5), int(shape[3] * sx + 0.5))


def test_default_model_is_about_1_4_million_parameters():
    n = count_parameters(MetaSR())
    assert 1.2e6 < n <= 1.5e6


def test_untrained_model_is_bicubic():
    """The last Pos2Weight layer starts at zero, so the output is exactly the bicubic skip."""
    x = torch.rand(1, 1, 8, 10)
    with torch.no_grad():
        out = MetaSR(n_feats=4, n_resblocks=1, mlp_hidden=8)(x, 2.0, 2.0)
    ref = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


class _Taps(nn.Module):
    """A fixed 'Pos2Weight' on one channel: nearest (centre tap) or bilinear tent weights from the offsets."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def forward(self, off_y, off_x, sx, sy):
        def tent(o):  # (U,) -> (U, 3) weights of taps -1, 0, +1
            if self.kind == "nearest":
                return torch.stack([torch.zeros_like(o), torch.ones_like(o), torch.zeros_like(o)], -1)
            return torch.stack([(-o).clamp(min=0), 1 - o.abs(), o.clamp(min=0)], -1)

        w = tent(off_y)[:, None, :, None] * tent(off_x)[None, :, None, :]  # (Uy, Ux, 3, 3)
        return w[:, :, None, None]  # (Uy, Ux, out=1, C=1, 3, 3)


@pytest.mark.parametrize("path", ["dense", "rows", "pixel"])
@pytest.mark.parametrize(("h", "w", "sx", "sy"), [(9, 11, 2.0, 2.0), (10, 12, 2.5, 1.5), (8, 7, 3.0, 4.0)])
def test_meta_upscale_with_fixed_weights_reproduces_torch_interpolation(path, h, w, sx, sy):
    x = torch.rand(2, 1, h, w, dtype=torch.float64)
    size = (round(h * sy), round(w * sx))
    nearest = MetaUpscale(1, weight_net=_Taps("nearest"))(x, sx, sy, path=path)
    torch.testing.assert_close(nearest, F.interpolate(x, size=size, mode="nearest-exact"))
    bilinear = MetaUpscale(1, weight_net=_Taps("bilinear"))(x, sx, sy, path=path)
    reference = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    # offsets are rounded to 2**-16 pixels so periodic patterns repeat exactly
    torch.testing.assert_close(bilinear, reference, atol=2e-5, rtol=0)


@pytest.mark.parametrize(("sx", "sy"), [(2.0, 2.0), (2.5, 3.5), (1.1, 3.7), (4.0, 1.0)])
@pytest.mark.parametrize("other", ["rows", "dense"])
def test_dense_rows_and_pixel_paths_agree_with_gradients(sx, sy, other):
    torch.manual_seed(0)
    up = MetaUpscale(3, hidden=8)
    nn.init.normal_(up.weight_net.mlp[-1].weight)
    feats = torch.rand(2, 3, 6, 7, requires_grad=True)
    a = up(feats, sx, sy, path=other)
    (ga,) = torch.autograd.grad(a.square().sum(), feats)
    b = up(feats, sx, sy, path="pixel")
    (gb,) = torch.autograd.grad(b.square().sum(), feats)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ga, gb, atol=1e-4, rtol=1e-4)


def test_weights_are_computed_per_unique_offset_pair():
    calls = []
    net = Pos2Weight(2, hidden=4)
    net.register_forward_hook(lambda mod, args, out: calls.append(out.shape))
    MetaUpscale(2, weight_net=net)(torch.rand(1, 2, 20, 20), 2.5, 2.0)
    assert calls == [(2, 5, 1, 2, 3, 3)]  # 2 row offsets at x2, 5 column offsets at x2.5


def test_discriminator_returns_logits_and_features():
    logits, feats = PatchDiscriminator(1, base=4, n_layers=3)(torch.rand(2, 1, 32, 32))
    assert logits.shape == (2, 1, 8, 8)
    assert [f.shape[1] for f in feats] == [4, 8, 16]


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: ResBlock(0), "channels"),
        (lambda: ResBlock(4, kernel_size=2), "odd"),
        (lambda: EDSRFeatures(n_resblocks=0), "n_resblocks"),
        (lambda: Pos2Weight(4, hidden=-1), "hidden"),
        (lambda: MetaSR(n_feats=2.5), "n_feats"),
        (lambda: PatchDiscriminator(base=0), "base"),
    ],
)
def test_bad_arguments_raise_value_error(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()


def test_forward_refuses_wrong_channels():
    with pytest.raises(ValueError, match="expected"):
        MetaSR(n_feats=4, n_resblocks=1)(torch.rand(1, 3, 8, 8), 2.0, 2.0)

"""Meta-upscale at scales p/q with a large p (x3.999, x3.14159): the same result as building the whole weight
table (the way every path used to), without ever building it, and in bounded memory."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from engines.superres import model as model_module
from engines.superres.geometry import source_positions
from engines.superres.model import MetaSR, MetaUpscale, Pos2Weight

torch.set_num_threads(1)


def _reference(up: MetaUpscale, feats: torch.Tensor, sx: float, sy: float) -> torch.Tensor:
    """The whole (row offset, column offset) weight table, then one k x k dot product per output pixel."""
    k = up.kernel_size
    h, w = feats.shape[2:]
    src_y, off_y = source_positions(h, sy)
    src_x, off_x = source_positions(w, sx)
    uniq_y, cls_y = torch.unique(off_y, return_inverse=True)
    uniq_x, cls_x = torch.unique(off_x, return_inverse=True)
    table = up.weight_net(uniq_y.to(feats.dtype), uniq_x.to(feats.dtype), sx, sy).flatten(3)
    unfolded = F.unfold(F.pad(feats, (k // 2,) * 4, mode="replicate"), k)  # (B, C*k*k, h*w)
    pos = (src_y[:, None] * w + src_x[None, :]).flatten()
    wpix = table[cls_y][:, cls_x].flatten(0, 1)  # (H*W, out, C*k*k)
    out = torch.einsum("bkp,pok->bop", unfolded[:, :, pos], wpix)
    return out.view(feats.shape[0], -1, src_y.numel(), src_x.numel())


def _random_upscale(channels: int, out: int = 1, hidden: int = 16, seed: int = 0) -> MetaUpscale:
    torch.manual_seed(seed)
    up = MetaUpscale(channels, out, hidden=hidden)
    nn.init.normal_(up.weight_net.mlp[-1].weight, std=0.5)
    nn.init.normal_(up.weight_net.mlp[-1].bias, std=0.5)
    return up.eval()


SCALES = [(2.0, 2.0), (2.5, 2.5), (3.0, 3.0), (4.0, 4.0), (1.5, 1.5), (2.5, 1.5), (1.1, 3.7), (4.0, 1.0),
          (3.999, 3.999), (1.0001, 1.0001), (3.14159, 2.0), (2.37, 1.0), (3.999, 1.0)]


@pytest.mark.parametrize(("sx", "sy"), SCALES)
def test_auto_path_matches_the_whole_table(sx, sy):
    up = _random_upscale(4)
    feats = torch.rand(2, 4, 9, 11)
    with torch.no_grad():
        torch.testing.assert_close(up(feats, sx, sy), _reference(up, feats, sx, sy), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("path", ["pixel", "factored"])
@pytest.mark.parametrize(("sx", "sy"), [(2.0, 2.0), (2.5, 1.5), (3.999, 3.999), (3.14159, 1.0), (1.0, 2.37)])
def test_chunked_paths_match_the_whole_table_with_tiny_chunks(path, sx, sy, monkeypatch):
    # chunks of one to a few output rows; in the pixel path the table is then built per chunk
    monkeypatch.setattr(model_module, "_CHUNK_ELEMENTS", 2000)
    up = _random_upscale(3, out=2)
    feats = torch.rand(2, 3, 7, 10)
    with torch.no_grad():
        torch.testing.assert_close(up(feats, sx, sy, path=path), _reference(up, feats, sx, sy),
                                   atol=1e-5, rtol=1e-5)


def test_factored_path_has_the_same_gradients():
    up = _random_upscale(3)
    feats = torch.rand(1, 3, 6, 7, requires_grad=True)
    a = up(feats, 3.999, 2.37, path="factored")
    grads_a = torch.autograd.grad(a.square().sum(), [feats, *up.parameters()])
    b = _reference(up, feats, 3.999, 2.37)
    grads_b = torch.autograd.grad(b.square().sum(), [feats, *up.parameters()])
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    for ga, gb in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(ga, gb, atol=1e-4, rtol=1e-4)


def test_the_sr_light_architecture_at_x3_999_matches_the_whole_table():
    torch.manual_seed(1)
    model = MetaSR(n_feats=32, n_resblocks=1, mlp_hidden=128).eval()
    nn.init.normal_(model.upscale.weight_net.mlp[-1].weight, std=0.05)
    x = torch.rand(1, 1, 24, 20)
    with torch.no_grad():
        feats = model.features(x)
        expected = _reference(model.upscale, feats, 3.999, 3.999)
        torch.testing.assert_close(model.upscale(feats, 3.999, 3.999), expected, atol=1e-5, rtol=1e-5)


def test_factored_path_needs_a_pos2weight():
    class Fixed(nn.Module):
        def forward(self, off_y, off_x, sx, sy):
            return torch.ones(off_y.numel(), off_x.numel(), 1, 1, 3, 3)

    with pytest.raises(ValueError, match="Pos2Weight"):
        MetaUpscale(1, weight_net=Fixed())(torch.rand(1, 1, 5, 5), 2.0, 2.0, path="factored")
    # any other weight_net still works at a large-numerator scale, through the chunked pixel path
    out = MetaUpscale(1, weight_net=Fixed())(torch.rand(1, 1, 5, 5), 3.999, 3.999)
    assert out.shape == (1, 1, 20, 20)


class _Wrapped(nn.Module):
    """A weight_net that is not a Pos2Weight (so MetaUpscale cannot factor it)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, off_y, off_x, sx, sy):
        return self.net(off_y, off_x, sx, sy)


class _LargestTensor(TorchDispatchMode):
    """Records the element count of the largest tensor any torch operation returns."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for t in tree_flatten(result)[0]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return result


def _largest_intermediate(up: MetaUpscale, feats: torch.Tensor, s: float) -> tuple[int, int]:
    with torch.no_grad(), _LargestTensor() as mode:
        out = up(feats, s, s)
    return mode.largest, out.numel()


@pytest.mark.parametrize("weight_net", ["pos2weight", "other"])
def test_largest_intermediate_at_x3_999_stays_bounded(weight_net, monkeypatch):
    # sr_light's meta-upscale (32 features, 128 hidden units) on a 64 x 64 slice: the whole table at x3.999
    # would hold 256 * 256 pairs * 288 weights = 18.9 M floats, 8 times the (lowered) chunk bound
    bound = 2**21
    monkeypatch.setattr(model_module, "_CHUNK_ELEMENTS", bound)
    torch.manual_seed(0)
    net = Pos2Weight(32, 1, 3, 128)
    if weight_net == "other":  # a weight_net that is not a Pos2Weight gets the chunked pixel path
        net = _Wrapped(net)
    up = MetaUpscale(32, 1, 3, 128, weight_net=net)
    feats = torch.rand(1, 32, 64, 64)
    largest, n_out = _largest_intermediate(up, feats, 3.999)
    table = 256 * 256 * 32 * 9
    assert largest <= max(bound, feats.numel() * 9, n_out) < table / 4
    # and no larger than a round scale's own intermediates would allow
    largest_x4, _ = _largest_intermediate(up, feats, 4.0)
    assert largest <= max(bound, 2 * largest_x4)

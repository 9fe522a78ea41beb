"""The HybridSN-style CNN: shapes, banded 3-D convolution vs conv3d, dense vs patch-wise, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from engines.hyperspectral.bench import run_protocol
from engines.hyperspectral.cnn import CNNClassifier, CNNSettings, HybridSN, SpectralSpatialBlock
from engines.hyperspectral.protocol import Cancelled, make_split

# (in_bands, n_classes, patch, input shape, expected output shape)
SHAPES = [
    (30, 9, 11, (2, 1, 30, 11, 11), (2, 9, 1, 1)),
    (30, 9, 11, (1, 1, 30, 20, 17), (1, 9, 10, 7)),
    (15, 4, 9, (3, 1, 15, 9, 9), (3, 4, 1, 1)),
    (20, 2, 13, (1, 1, 20, 13, 15), (1, 2, 1, 3)),
]


@pytest.mark.parametrize(("bands", "classes", "patch", "shape", "expected"), SHAPES)
def test_output_shapes(bands: int, classes: int, patch: int, shape: tuple, expected: tuple) -> None:
    net = HybridSN(bands, classes, patch=patch).eval()
    assert tuple(net(torch.zeros(shape)).shape) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"in_bands": 30, "n_classes": 9, "patch": 10}, "odd"),
        ({"in_bands": 30, "n_classes": 9, "patch": 7}, ">= 9"),
        ({"in_bands": 10, "n_classes": 9}, "in_bands"),
        ({"in_bands": 30, "n_classes": 1}, "n_classes"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HybridSN(**kwargs)


def test_banded_convolution_equals_conv3d_with_gradients() -> None:
    torch.manual_seed(0)
    block = SpectralSpatialBlock(3, 4, (5, 3, 3))
    x = torch.randn(2, 3, 12, 7, 8, requires_grad=True)
    ours = F.conv2d(x.reshape(2, 36, 7, 8), block.banded_weight(12)).reshape(2, 4, 8, 5, 6)
    ref = F.conv3d(x, block.weight)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(ref)
    gx_ours, gw_ours = torch.autograd.grad(ours, (x, block.weight), g)
    gx_ref, gw_ref = torch.autograd.grad(ref, (x, block.weight), g)
    torch.testing.assert_close(gx_ours, gx_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gw_ours, gw_ref, atol=1e-4, rtol=1e-4)


def test_dense_prediction_equals_each_patch() -> None:
    torch.manual_seed(1)
    net = HybridSN(30, 5, patch=11).eval()
    for m in net.modules():  # non-trivial normalisation statistics
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    scene = torch.randn(1, 1, 30, 18, 16)
    with torch.no_grad():
        dense = net(scene)[0]
        for r, c in [(0, 0), (3, 4), (7, 5)]:
            patch = net(scene[..., r : r + 11, c : c + 11])[0, :, 0, 0]
            torch.testing.assert_close(dense[:, r, c], patch, atol=1e-4, rtol=1e-4)


def test_learns_the_tiny_scene(small_scene) -> None:
    split = make_split(small_scene.labels, per_class=10, seed=0)
    result, class_map = run_protocol(small_scene, "cnn", split, seed=0, quick=True)
    assert result["OA"] > 3 / len(small_scene.class_names)
    assert result["settings"]["steps"] == 30 and result["settings"]["components"] == 30
    assert class_map.shape == small_scene.shape[:2]


def test_training_is_seeded_and_cancellable(small_scene) -> None:
    split = make_split(small_scene.labels, per_class=5, seed=0)
    keep = np.ones(small_scene.shape[2], bool)
    settings = CNNSettings(steps=3, batch=8)
    a = CNNClassifier(seed=2, settings=settings).fit(small_scene.data, split.train, keep)
    b = CNNClassifier(seed=2, settings=settings).fit(small_scene.data, split.train, keep)
    for pa, pb in zip(a.net.parameters(), b.net.parameters(), strict=True):
        torch.testing.assert_close(pa, pb)
    steps = []
    with pytest.raises(Cancelled):
        CNNClassifier(seed=2, settings=CNNSettings(steps=50, batch=8)).fit(
            small_scene.data,
            split.train,
            keep,
            progress=lambda s, i, n: steps.append((s, i)),
            stop=lambda: len([s for s in steps if s[0] == "training"]) >= 2,
        )
    assert ("training", 2) in steps and ("training", 3) not in steps


def test_too_few_training_pixels_is_an_input_error(small_scene) -> None:
    from engines.errors import InputError

    split = make_split(small_scene.labels, per_class=1, seed=0)  # 11 classes: 11 pixels, 10 components
    keep = np.ones(small_scene.shape[2], bool)
    with pytest.raises(InputError, match=r"needs at least 14 training pixels .* got 11 pixels and 270 bands"):
        CNNClassifier(seed=0, settings=CNNSettings(steps=2, batch=8)).fit(small_scene.data, split.train, keep)

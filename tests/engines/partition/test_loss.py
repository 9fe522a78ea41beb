"""dice_ce_loss and dice_scores on one block against MONAI's DiceCELoss and DiceMetric (the reference)."""

from __future__ import annotations

import pytest
import torch
from monai.losses import DiceCELoss
from monai.metrics import DiceMetric
from monai.networks.utils import one_hot

from engines.partition.loss import dice_ce_loss, dice_scores
from engines.partition.mesh import SpatialMesh


@pytest.mark.parametrize("lambdas", [(1.0, 1.0), (0.3, 2.0)])
def test_dice_ce_loss_and_its_gradient_equal_monai(lambdas):
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 4, 6, 5, 7, dtype=torch.float64, generator=generator, requires_grad=True)
    labels = torch.randint(0, 4, (2, 1, 6, 5, 7), generator=generator)
    labels[1][labels[1] == 2] = 0  # a class absent from one sample
    reference = DiceCELoss(to_onehot_y=True, softmax=True, lambda_dice=lambdas[0], lambda_ce=lambdas[1])
    expected = reference(logits, labels)
    (grad_expected,) = torch.autograd.grad(expected, logits)
    loss = dice_ce_loss(logits, labels, SpatialMesh((1, 1, 1)), lambda_dice=lambdas[0], lambda_ce=lambdas[1])
    (grad,) = torch.autograd.grad(loss, logits)
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-12)
    torch.testing.assert_close(grad, grad_expected, rtol=1e-10, atol=1e-12)


def test_dice_scores_equal_monai_dice_metric():
    generator = torch.Generator().manual_seed(4)
    logits = torch.randn(1, 3, 8, 8, 8, generator=generator)
    labels = torch.randint(0, 3, (1, 1, 8, 8, 8), generator=generator)
    metric = DiceMetric(include_background=True, reduction="none")
    expected = metric(one_hot(logits.argmax(1, keepdim=True), 3), one_hot(labels, 3))[0]
    assert dice_scores(logits, labels, SpatialMesh((1, 1, 1))) == pytest.approx(expected.tolist(), rel=1e-6)


def test_dice_scores_say_none_for_a_class_nowhere():
    logits = torch.zeros(1, 3, 2, 2, 2)
    logits[:, 0] = 1
    assert dice_scores(logits, torch.zeros(1, 1, 2, 2, 2, dtype=torch.int64), SpatialMesh((1, 1, 1))) == [
        1.0, None, None]


def test_mismatched_labels_are_refused():
    with pytest.raises(ValueError, match="do not match"):
        dice_ce_loss(torch.zeros(1, 2, 4, 4, 4), torch.zeros(1, 1, 4, 4, 2), SpatialMesh((1, 1, 1)))


def test_padding_counts_in_neither_loss_nor_dice():
    """With a mask of the image's own voxels, loss, gradient and Dice are those of the unpadded box."""
    generator = torch.Generator().manual_seed(5)
    logits = torch.randn(1, 3, 8, 6, 4, dtype=torch.float64, generator=generator, requires_grad=True)
    labels = torch.randint(0, 3, (1, 1, 8, 6, 4), generator=generator)
    labels[..., 5:, :, :] = 0  # padding is labelled background
    mask = torch.zeros(1, 1, 8, 6, 4, dtype=torch.bool)
    mask[..., :5, :, :3] = True
    mesh = SpatialMesh((1, 1, 1))
    loss = dice_ce_loss(logits, labels, mesh, mask=mask)
    (grad,) = torch.autograd.grad(loss, logits)
    inside = logits.detach()[..., :5, :, :3].clone().requires_grad_(True)
    expected = DiceCELoss(to_onehot_y=True, softmax=True)(inside, labels[..., :5, :, :3])
    (grad_expected,) = torch.autograd.grad(expected, inside)
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-12)
    torch.testing.assert_close(grad[..., :5, :, :3], grad_expected, rtol=1e-10, atol=1e-12)
    assert torch.count_nonzero(grad[..., 5:, :, :]) == 0 and torch.count_nonzero(grad[..., 3:]) == 0
    assert dice_scores(logits.detach(), labels, mesh, mask) == pytest.approx(
        dice_scores(inside.detach(), labels[..., :5, :, :3], mesh), rel=1e-12)
    assert dice_scores(logits.detach(), labels, mesh, mask) != dice_scores(logits.detach(), labels, mesh)

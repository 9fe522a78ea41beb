"""dice_ce_loss and dice_scores against MONAI's DiceCELoss and DiceMetric (the reference): on one block, and
over two ranks of which only one holds padding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
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


OWN = 6  # of the 8 planes along D, the last 2 are padding: all in rank 1's block (planes 4-7) of a 2x1x1 mesh


def _padded_case() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(6)
    logits = torch.randn(1, 3, 8, 6, 4, dtype=torch.float64, generator=generator)
    labels = torch.randint(0, 3, (1, 1, 8, 6, 4), generator=generator)
    labels[:, :, OWN:] = 0
    return logits, labels


def padded_on_one_rank_worker():
    """Rank 1's block reaches into the padding; rank 0's does not, and passes no mask (as train._batch)."""
    mesh = SpatialMesh((2, 1, 1))
    logits, labels = _padded_case()
    block = mesh.block(logits).clone().requires_grad_(True)
    mask = None
    if mesh.rank == 1:
        mask = torch.zeros(1, 1, 4, 6, 4, dtype=torch.bool)
        mask[:, :, : OWN - 4] = True
    loss = dice_ce_loss(block, mesh.block(labels), mesh, mask=mask)
    (grad,) = torch.autograd.grad(loss, block)
    return float(loss), grad, dice_scores(block.detach(), mesh.block(labels), mesh, mask)


@pytest.mark.dist
def test_padding_in_one_ranks_block_only(ranks):
    """A crop that reaches the padding in some blocks only: every rank must still join the same collectives
    (the demo's training aborted with a gloo size mismatch when one rank counted voxels and the other not)."""
    logits, labels = _padded_case()
    inside = logits[:, :, :OWN].clone().requires_grad_(True)
    expected = DiceCELoss(to_onehot_y=True, softmax=True)(inside, labels[:, :, :OWN])
    (grad_expected,) = torch.autograd.grad(expected, inside)
    grad_expected = F.pad(grad_expected, (0, 0, 0, 0, 0, 8 - OWN))  # padding gets no gradient
    expected_dice = dice_scores(inside.detach(), labels[:, :, :OWN], SpatialMesh((1, 1, 1)))
    results = ranks(2).run(padded_on_one_rank_worker, timeout_s=120)
    for rank, (loss, grad, dice) in enumerate(results):
        assert loss == pytest.approx(float(expected.detach()), rel=1e-12)
        torch.testing.assert_close(grad, grad_expected[:, :, 4 * rank: 4 * rank + 4], rtol=1e-10, atol=1e-12)
        assert dice == pytest.approx(expected_dice, rel=1e-12)

"""The first test: MONAI networks partitioned over 1, 2 and 4 gloo ranks equal the whole-volume network.

Output, DiceCE loss (MONAI's DiceCELoss on the whole volume as reference), input gradient, every parameter
gradient, and the weights after five SGD steps: rtol 1e-4 / atol 1e-5 in float32, 1e-9 in float64
(`engines.partition.check.compare_models`). The default run covers every model, every split (D, H, W,
DxH) and both dtypes at least once; the `slow` matrix runs every combination.

float32 near a kink: a LeakyReLU/PReLU input within rounding of 0 can take the other branch in one of
the two runs, which moves some gradients by more than the tolerance (seen with basicunet on 2x1x1x2: one
voxel of ~2e-7 flipped). A float32 case may therefore miss the tolerance only when the check found such
flips, all within 1e-5 of the kink, and the identical case then passes in float64 at 1e-9 - a
partitioning error would fail there too.
"""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from monai.networks.nets import UNet

from engines.partition.check import _kink_flips, check_worker
from engines.partition.convert import partition_model
from engines.partition.mesh import SpatialMesh

CASES = [  # (ranks, mesh, data-parallel replicas, model, dtype)
    (1, (1, 1, 1), 1, "unet", "float32"),
    (2, (2, 1, 1), 1, "basicunet", "float32"),
    (2, (1, 2, 1), 1, "unet", "float64"),
    (2, (1, 1, 2), 1, "dynunet", "float32"),
    (4, (2, 2, 1), 1, "basicunet", "float64"),
    (4, (2, 2, 1), 1, "unet", "float32"),
    (4, (2, 2, 1), 1, "dynunet", "float64"),
    (4, (2, 1, 1), 2, "unet", "float64"),
]
MESHES = [(1, (1, 1, 1), 1), (2, (2, 1, 1), 1), (2, (1, 2, 1), 1), (2, (1, 1, 2), 1), (4, (2, 2, 1), 1),
          (4, (2, 1, 1), 2)]
MATRIX = [(*m, model, dtype) for m, model, dtype in
          itertools.product(MESHES, ("basicunet", "unet", "dynunet"), ("float32", "float64"))]


KINK_MARGIN = 1e-5  # |pre-activation| below which float32 rounding may decide the branch


def _check(ranks, n, mesh, dp, model, dtype):
    result = ranks(n).run(check_worker, model, mesh, dp, dtype, 2, 0, timeout_s=240)[0]
    if dtype == "float32" and not result["ok"]:
        assert result["kink_flips"] > 0 and result["kink_margin"] < KINK_MARGIN, result
        _check(ranks, n, mesh, dp, model, "float64")
        return
    assert result["failed"] == [], result
    assert result["ok"]
    assert result["kink_flips"] == 0 or dtype == "float32"
    limit = 1e-4 if dtype == "float32" else 1e-9
    assert result["max_rel_err_grad"] < limit
    assert result["loss_abs_err"] < limit


@pytest.mark.dist
@pytest.mark.parametrize(("n", "mesh", "dp", "model", "dtype"), CASES)
def test_partitioned_model_equals_whole_volume_model(ranks, n, mesh, dp, model, dtype):
    _check(ranks, n, mesh, dp, model, dtype)


@pytest.mark.dist
@pytest.mark.slow
@pytest.mark.parametrize(("n", "mesh", "dp", "model", "dtype"), [c for c in MATRIX if c not in CASES])
def test_partitioned_model_equals_whole_volume_model_full_matrix(ranks, n, mesh, dp, model, dtype):
    _check(ranks, n, mesh, dp, model, dtype)


def test_kink_flips_are_counted_per_forward_pass_with_the_reference_magnitude():
    reference = [(1, torch.tensor([0.5, -2e-7, 3.0])), (1, torch.tensor([-1.0, 1e-6])),
                 (2, torch.tensor([4e-3]))]
    signs = [torch.tensor([1, 1, 1], dtype=torch.uint8), torch.tensor([0, 0], dtype=torch.uint8),
             torch.tensor([0], dtype=torch.uint8)]
    assert _kink_flips(signs, reference) == {1: (2, pytest.approx(1e-6)), 2: (1, pytest.approx(4e-3))}
    assert _kink_flips([(x > 0).to(torch.uint8) for _, x in reference], reference) == {}
    with pytest.raises(RuntimeError, match="differently"):
        _kink_flips(signs[:2], reference)


def _output_and_gradients(model: torch.nn.Module, x: torch.Tensor, *, autocast: bool
                          ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        y = model(x)
    (y.float().square().mean() * 2).backward()  # the sum of the two blocks' means, as the ranks make it
    return y.detach().float(), [p.grad.clone() for p in model.parameters()]


def autocast_worker() -> dict[str, float | str]:
    """A UNet under torch.autocast (CPU bfloat16), partitioned on 2x1x1 and whole: how far the partitioned
    output and gradients are from the whole's, and how far the whole's are from float32 (its own rounding).
    Gradients are measured against the largest float32 one (a bias before a norm has ~0 gradient)."""
    mesh = SpatialMesh((2, 1, 1))
    torch.manual_seed(0)
    model = UNet(3, 1, 3, (4, 8, 8), (2, 2), num_res_units=1)
    part = partition_model(model, mesh)
    x = torch.randn(1, 1, 16, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = part(mesh.block(x))
    y.float().square().mean().backward()
    grads = [p.grad.clone() for p in part.parameters()]
    for g in grads:
        torch.distributed.all_reduce(g)
    whole = mesh.gather(y.detach().float().contiguous())
    if mesh.rank != 0:
        return {}
    out16, grads16 = _output_and_gradients(model, x, autocast=True)
    out32, grads32 = _output_and_gradients(model, x, autocast=False)
    scale = max(float(g.abs().max()) for g in grads32)

    def apart(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
        return max(float((p - q).abs().max()) for p, q in zip(a, b, strict=True)) / scale

    return {"dtype": str(y.dtype), "grad_dtype": str(grads[0].dtype),
            "output": float((whole - out16).abs().max()),
            "output_rounding": float((out16 - out32).abs().max()),
            "grads": apart(grads, grads16), "grads_rounding": apart(grads16, grads32)}


@pytest.mark.dist
def test_a_partitioned_model_runs_under_autocast_within_the_whole_models_own_rounding(ranks):
    result = ranks(2).run(autocast_worker, timeout_s=240)[0]
    assert result["dtype"] == "torch.bfloat16" and result["grad_dtype"] == "torch.float32"
    assert result["output"] <= 3 * result["output_rounding"], result  # summation order, not wrong numbers
    assert result["grads"] <= 3 * result["grads_rounding"], result


def deepcopy_worker() -> bool:
    """A partitioned model with a data-parallel axis copies (the copy shares the mesh) and computes alike."""
    mesh = SpatialMesh((1, 1, 2), data_parallel=2)
    torch.manual_seed(0)
    part = partition_model(UNet(3, 1, 2, (4, 8), (2,)), mesh)
    twin = copy.deepcopy(part)
    x = mesh.block(torch.randn(1, 1, 8, 8, 8, generator=torch.Generator().manual_seed(mesh.replica)))
    return twin is not part and torch.equal(twin(x), part(x))


@pytest.mark.dist
def test_a_partitioned_model_with_replicas_can_be_deep_copied(ranks):
    assert ranks(4).run(deepcopy_worker, timeout_s=120) == [True] * 4

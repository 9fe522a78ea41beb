"""The partition self-test: a partitioned model against the same model on the whole volume.

Every rank builds the same network (same seed) and the same random volume and runs the partitioned copy
with `dice_ce_loss` on its block; each replica's first rank gathers the blocks and runs the plain network
with MONAI's DiceCELoss on the whole volume as the reference. Compared: output, loss, input gradient,
every parameter gradient, and the weights after a few SGD steps. Used by `python main.py partition-check`
and by the tests.

Kinks: a ReLU-family activation's derivative jumps at 0, so a pre-activation within rounding of 0 can take
the other branch in the partitioned run (its sums run in another order) and change a gradient by far more
than rounding. The check counts these voxels in the first forward pass that has any, over all replicas
(`kink_flips`, with the largest |pre-activation| among them in `kink_margin`; later passes run on weights
those flips already changed), so a float32 mismatch can be told apart from a partitioning error.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from engines.partition.convert import partition_model, required_multiple
from engines.partition.grads import sum_gradients
from engines.partition.layout import format_mesh
from engines.partition.loss import dice_ce_loss
from engines.partition.mesh import SpatialMesh
from engines.partition.models import build_model

TOLERANCES = {torch.float32: (1e-4, 1e-5), torch.float64: (1e-9, 1e-9)}  # (rtol, atol)
KINKED = (nn.ReLU, nn.LeakyReLU, nn.PReLU)  # activations whose derivative jumps at 0


def _record_activation_inputs(net: nn.Module, keep: Callable[[torch.Tensor], torch.Tensor]
                              ) -> tuple[list[tuple[int, torch.Tensor]], list[Any]]:
    """Hooks recording (forward pass, keep(input)) for every kinked activation call of `net`, in call order.

    Returns the list they append to and the hook handles.
    """
    records: list[tuple[int, torch.Tensor]] = []
    passes = [0]

    def count(_module: nn.Module, _args: tuple) -> None:
        passes[0] += 1

    def hook(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        records.append((passes[0], keep(args[0].detach())))  # before an inplace activation overwrites it

    handles = [net.register_forward_pre_hook(count)]
    handles += [m.register_forward_pre_hook(hook) for m in net.modules() if isinstance(m, KINKED)]
    return records, handles


def _kink_flips(signs: list[torch.Tensor] | None, reference: list[tuple[int, torch.Tensor]]
                ) -> dict[int, tuple[int, float]]:
    """Per forward pass with any: pre-activations whose sign differs from the reference's, and the largest
    |reference| among them."""
    if signs is None or len(signs) != len(reference):
        raise RuntimeError("the partitioned and whole-volume runs called their activations differently")
    found: dict[int, tuple[int, float]] = {}
    for sign, (forward, x) in zip(signs, reference, strict=True):
        flipped = sign.bool() != (x > 0)
        if bool(flipped.any()):
            flips, margin = found.get(forward, (0, 0.0))
            found[forward] = (flips + int(flipped.sum()), max(margin, float(x[flipped].abs().max())))
    return found


class _Errors:
    """Running worst errors; a comparison fails when |a - b| > atol + rtol * |b| anywhere."""

    def __init__(self, rtol: float, atol: float) -> None:
        self.rtol, self.atol = rtol, atol
        self.abs = dict.fromkeys(("output", "grad", "loss", "weights"), 0.0)
        self.scale = dict.fromkeys(self.abs, 0.0)
        self.failed: list[str] = []
        self.kinks: dict[int, tuple[int, float]] = {}  # see _kink_flips; on the ranks that ran the reference

    def compare(self, name: str, kind: str, value: torch.Tensor, reference: torch.Tensor) -> None:
        diff = (value.detach() - reference.detach()).abs()
        if bool((diff > self.atol + self.rtol * reference.detach().abs()).any()):
            self.failed.append(name)
        self.abs[kind] = max(self.abs[kind], float(diff.max()))
        self.scale[kind] = max(self.scale[kind], float(reference.detach().abs().max()))


def compare_models(model: nn.Module, mesh: SpatialMesh, *, shape: tuple[int, int, int] | None = None,
                   dtype: torch.dtype = torch.float64, classes: int = 3, steps: int = 5, lr: float = 0.05,
                   seed: int = 0, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Run `model` whole and partitioned over `mesh` on one random volume; return the worst errors.

    Call on every rank of the mesh at once. `model` must be deterministic (dropout off) and take one
    input channel and give `classes` output channels; it is not modified.

    Parameters
    ----------
    shape : (D, H, W), optional
        Whole-volume size; by default the smallest the mesh and the model's downsampling allow.
    steps : int
        SGD steps taken by both models before their weights are compared.

    Returns
    -------
    dict
        max_abs_err_output, max_rel_err_grad (max |g - g_ref| / max |g_ref|, both maxima over all
        parameters and the input),
        loss_abs_err, max_abs_err_weights (after `steps` SGD steps), failed (names of the compared
        tensors outside tolerance), ok, kink_flips and kink_margin (see the module docstring); the same
        on every rank.
    """
    if shape is None:
        multiple = required_multiple(model)
        shape = tuple(max(2 * m, m * n) for m, n in zip(multiple, mesh.shape, strict=True))
    model = copy.deepcopy(model).to(device=device, dtype=dtype)
    generator = torch.Generator().manual_seed(seed)
    image = torch.randn(mesh.data_parallel, 1, *shape, generator=generator, dtype=dtype).to(device)
    labels = torch.randint(0, classes, (mesh.data_parallel, 1, *shape), generator=generator).to(device)
    mine = slice(mesh.replica, mesh.replica + 1)

    # Partitioned, on every rank; results gathered on each replica's first rank.
    partitioned = partition_model(model, mesh)
    signs, handles = _record_activation_inputs(partitioned, lambda t: (t > 0).to(torch.uint8))
    x = mesh.block(image[mine]).clone().requires_grad_()
    out = partitioned(x)
    loss = dice_ce_loss(out, mesh.block(labels[mine]), mesh)
    loss.backward()
    sum_gradients(partitioned, mesh)
    loss = loss.detach()
    if mesh.distributed:  # the objective is the mean of the replicas' losses (equal within a replica)
        dist.all_reduce(loss)
        loss /= mesh.world_size
    # ... so an input's gradient under it is its replica's divided by the replica count.
    whole = [mesh.gather(t) if mesh.distributed else t for t in (out.detach(), x.grad / mesh.data_parallel)]
    grads = [p.grad.clone() for p in partitioned.parameters()]
    _sgd(partitioned, steps, lr, lambda net: dice_ce_loss(net(mesh.block(image[mine])),
                                                          mesh.block(labels[mine]), mesh), mesh)
    for handle in handles:
        handle.remove()
    # This replica's signs, on its first rank.
    signs = [mesh.gather(s) if mesh.distributed else s for _, s in signs]

    errors = _Errors(*TOLERANCES[dtype])
    if mesh.coords == (0, 0, 0):
        from monai.losses import DiceCELoss

        reference_loss = DiceCELoss(to_onehot_y=True, softmax=True)
        reference, handles = _record_activation_inputs(model, torch.clone)
        x_ref = image.clone().requires_grad_()
        out_ref = model(x_ref)
        loss_ref = reference_loss(out_ref, labels)
        loss_ref.backward()
        errors.compare("output", "output", whole[0], out_ref[mine])
        errors.compare("input gradient", "grad", whole[1], x_ref.grad[mine])
        errors.compare("loss", "loss", loss, loss_ref)
        for (name, p), grad in zip(model.named_parameters(), grads, strict=True):
            errors.compare(f"gradient of {name}", "grad", grad, p.grad)
        _sgd(model, steps, lr, lambda net: reference_loss(net(image), labels), None)
        for (name, p), p_ref in zip(partitioned.named_parameters(), model.parameters(), strict=True):
            errors.compare(f"weight {name} after {steps} SGD steps", "weights", p, p_ref)
        for handle in handles:
            handle.remove()
        errors.kinks = _kink_flips(signs, [(forward, x[mine]) for forward, x in reference])
    return _agree(errors, mesh, device)


def _sgd(net: nn.Module, steps: int, lr: float, loss_fn, mesh: SpatialMesh | None) -> None:
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn(net).backward()
        if mesh is not None:
            sum_gradients(net, mesh)
        optimizer.step()


def _agree(errors: _Errors, mesh: SpatialMesh, device: torch.device | str) -> dict[str, Any]:
    """The worst of every rank's errors, and which comparisons failed anywhere."""
    # Flips in later passes follow from the first ones (the weights have drifted): count the first only.
    first = torch.tensor([min(errors.kinks, default=2**62)], dtype=torch.int64, device=device)
    if mesh.distributed:
        dist.all_reduce(first, op=dist.ReduceOp.MIN)
    flips, margin = errors.kinks.get(int(first), (0, 0.0))
    worst = torch.tensor([*errors.abs.values(), errors.scale["grad"], float(bool(errors.failed)), margin],
                         dtype=torch.float64, device=device)
    flips = torch.tensor([flips], dtype=torch.int64, device=device)
    failed = [errors.failed]
    if mesh.distributed:
        dist.all_reduce(worst, op=dist.ReduceOp.MAX)
        dist.all_reduce(flips)
        failed = [None] * mesh.world_size
        dist.all_gather_object(failed, errors.failed)
    values = worst.tolist()
    return {
        "max_abs_err_output": values[0],
        "max_rel_err_grad": values[1] / values[4] if values[4] else values[1],
        "loss_abs_err": values[2],
        "max_abs_err_weights": values[3],
        "max_abs_err_grad": values[1],
        "failed": sorted({name for names in failed for name in names}),
        "ok": values[5] == 0.0,
        "kink_flips": int(flips),
        "kink_margin": values[6],
    }


def use_ieee_float32() -> None:
    """Have CUDA convolve and multiply float32 in IEEE float32. cuDNN convolves it in TF32 by default
    (10-bit mantissa): the partitioned and whole runs' 1-ulp differences of summation order would grow past
    the check's tolerance. Newer torch sets this per backend (fp32_precision), older with allow_tf32."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        conv.fp32_precision = "ieee"
        torch.backends.cuda.matmul.fp32_precision = "ieee"
    else:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


def check_worker(model_name: str, mesh_shape: tuple[int, int, int], data_parallel: int, dtype_name: str,
                 width: int, seed: int) -> dict[str, Any]:
    """`compare_models` for one of the named MONAI networks; runs on each rank (see launch.spawn)."""
    mesh = SpatialMesh(mesh_shape, data_parallel=data_parallel)
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    if device != "cpu":
        use_ieee_float32()
    torch.manual_seed(seed)
    model = build_model(model_name, in_channels=1, out_channels=3, width=width)
    result = compare_models(model, mesh, dtype=getattr(torch, dtype_name), classes=3, seed=seed,
                            device=device)
    return {"ranks": mesh.world_size, "mesh": format_mesh(mesh_shape, data_parallel), "model": model_name,
            "dtype": dtype_name, "backend": dist.get_backend(), **result}

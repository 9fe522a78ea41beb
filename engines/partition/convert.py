"""Turn an ordinary 3D segmentation network into one that runs on blocks of a partitioned volume.

`partition_model` swaps every layer that looks at neighbouring voxels or whole-volume statistics for its
partition-aware twin (same parameters, same state_dict keys), keeps pointwise layers, and refuses,
naming the module and its path, anything whose spatial behaviour it cannot vouch for.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

from engines.partition.conv import HaloConv3d, HaloConvTranspose3d
from engines.partition.mesh import SpatialMesh
from engines.partition.module import PartitionedModule
from engines.partition.norm import make_global
from engines.partition.pooling import PartitionedAvgPool3d, PartitionedMaxPool3d, check_pool
from engines.partition.upsample import PartitionedUpsample

# Layers with a partition-aware twin.
TWINS: dict[type, Callable[[nn.Module, SpatialMesh, str], nn.Module]] = {
    nn.Conv3d: HaloConv3d.from_module,
    nn.ConvTranspose3d: HaloConvTranspose3d.from_module,
    nn.MaxPool3d: PartitionedMaxPool3d.from_module,
    nn.AvgPool3d: PartitionedAvgPool3d.from_module,
    nn.Upsample: PartitionedUpsample.from_module,
    nn.InstanceNorm3d: make_global,
    nn.GroupNorm: make_global,
    nn.BatchNorm3d: make_global,
}

# Voxel-wise layers: a block gives the same values as the whole volume (dropout: the same distribution).
POINTWISE: tuple[type, ...] = (
    nn.Identity, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU,
    nn.SiLU, nn.Mish, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Softsign, nn.Hardswish, nn.Hardsigmoid,
    nn.Hardtanh, nn.LogSigmoid, nn.Tanhshrink, nn.Threshold, nn.Dropout,
)


def _pointwise() -> set[type]:
    """POINTWISE and MONAI's own voxel-wise activations (what act="SWISH", "MISH", "MEMSWISH" build).

    Not MONAI's GEGLU: it halves the last axis (W, in a 3D network), which on a block is the block's own."""
    from monai.networks.blocks.activation import MemoryEfficientSwish, Mish, Swish

    return {*POINTWISE, Swish, MemoryEfficientSwish, Mish}


def _containers() -> set[type]:
    """Containers whose forward only composes children with concatenation, sums and products."""
    from monai.networks.blocks import (
        ADN,
        Convolution,
        ResidualUnit,
        UnetBasicBlock,
        UnetOutBlock,
        UnetResBlock,
        UnetUpBlock,
        UpSample,
    )
    from monai.networks.layers.simplelayers import SkipConnection
    from monai.networks.nets.basic_unet import BasicUNet, Down, TwoConv, UpCat
    from monai.networks.nets.dynunet import DynUNet, DynUNetSkipLayer
    from monai.networks.nets.unet import UNet

    return {nn.Sequential, nn.ModuleList, nn.ModuleDict, ADN, Convolution, ResidualUnit, UnetBasicBlock,
            UnetOutBlock, UnetResBlock, UnetUpBlock, UpSample, SkipConnection, BasicUNet, Down, TwoConv,
            UpCat, DynUNet, DynUNetSkipLayer, UNet}


def _problem(module: nn.Module, containers: set[type], pointwise: set[type]) -> str | None:
    """Why `module` cannot run on blocks as it is, or None if it can (or has a twin)."""
    kind = type(module)
    if kind in TWINS or isinstance(module, PartitionedModule) or kind in pointwise:
        return None
    if kind is nn.Softmax or kind is nn.LogSoftmax:  # None: torch's implicit dim, 1 for (N, C, D, H, W)
        channel = module.dim in (1, -4, None)
        return None if channel else f"softmax over dim {module.dim}, not the channel dim 1"
    if kind is nn.Dropout3d:
        return None if module.p == 0 else ("Dropout3d drops whole channels: each rank would drop "
                                           "different ones")
    if kind in containers:
        if getattr(module, "deep_supervision", False):
            return "deep supervision resizes heads to a global shape; build the DynUNet without it"
        return None
    if not list(module.children()):
        return "no partition-aware version of this layer"
    return ("its forward may do spatial work the partition cannot see; if it only composes its children, "
            "pass it in allow=")


def partition_model(model: nn.Module, mesh: SpatialMesh, *, inplace: bool = False,
                    allow: Iterable[type] = ()) -> nn.Module:
    """A copy of `model` (or `model` itself with ``inplace=True``) that runs on this rank's block.

    Parameters
    ----------
    model : nn.Module
        A 3D network: MONAI BasicUNet, UNet or DynUNet, or one built from the same layers.
    mesh : SpatialMesh
        How the volume is split; the model's input is then this rank's block, shape (N, C, d, h, w).
    allow : iterable of types
        Extra container classes whose forward only composes their children (the caller vouches).

    Dropout keeps its per-voxel distribution; ranks seeded alike would draw the same mask on every block,
    so seed each rank differently after building the model (as the training job does).

    Raises
    ------
    ValueError
        Naming each module (path and class) that cannot be partitioned, or a layer whose geometry
        does not tile (e.g. a conv with even kernel).
    """
    containers, pointwise = _containers() | set(allow), _pointwise()
    problems = [f"{name or '<model>'} ({type(m).__name__}): {why}" for name, m in model.named_modules()
                if (why := _problem(m, containers, pointwise))]
    if problems:
        raise ValueError("cannot partition this model:\n  " + "\n  ".join(problems))
    try:  # for messages: the block multiple a layer's stride check fails against
        multiple: tuple[int, int, int] | None = required_multiple(model)
    except (RuntimeError, ValueError):  # a model the meta-device probe cannot run
        multiple = None
    target = model if inplace else copy.deepcopy(model)
    twins: dict[int, nn.Module] = {}
    for name, module in list(target.named_modules(remove_duplicate=False)):
        if type(module) not in TWINS:
            continue
        if id(module) not in twins:
            try:
                twins[id(module)] = TWINS[type(module)](module, mesh, name)
                twins[id(module)].model_multiple = multiple
            except ValueError as exc:
                raise ValueError(f"cannot partition {name or '<model>'} ({type(module).__name__}): "
                                 f"{exc}") from exc
        if not name:
            return twins[id(module)]
        parent_name, _, attr = name.rpartition(".")
        setattr(target.get_submodule(parent_name), attr, twins[id(module)])
    return target


def required_multiple(model: nn.Module, *, in_channels: int | None = None) -> tuple[int, int, int]:
    """Per-axis multiple a block's extent must be so every downsampling layer divides it exactly.

    Found by running the model on a meta-device volume (no memory, no compute) and recording, for each
    strided conv or pool, the downsampling accumulated before it times its own stride.

    Parameters
    ----------
    model : nn.Module
        The plain (unpartitioned) model.
    in_channels : int, optional
        Input channels; by default those of the first Conv3d.

    Returns
    -------
    (int, int, int)
        E.g. (16, 16, 16) for a BasicUNet (four 2x poolings).
    """
    if in_channels is None:
        first = next((m for m in model.modules() if isinstance(m, nn.Conv3d | nn.ConvTranspose3d)), None)
        in_channels = 1 if first is None else first.in_channels
    probe = copy.deepcopy(model).to("meta")
    downsampling = [m for m in probe.modules() if isinstance(m, nn.Conv3d | nn.MaxPool3d | nn.AvgPool3d)]
    # A probe every stride divides, however they are ordered (the product of all of them), at least 64.
    probe_size = [math.prod(_stride(m)[axis] for m in downsampling) for axis in range(3)]
    probe_size = [n * math.ceil(64 / n) for n in probe_size]
    multiple = [1, 1, 1]

    def record(module: nn.Module, args: tuple) -> None:
        stride = _stride(module)
        for axis in range(3):
            if stride[axis] > 1:
                before = probe_size[axis] // args[0].shape[2 + axis]
                multiple[axis] = math.lcm(multiple[axis], before * stride[axis])

    hooks = [module.register_forward_pre_hook(record) for module in downsampling]
    dtype = next((p.dtype for p in probe.parameters() if p.is_floating_point()), torch.get_default_dtype())
    with torch.no_grad():  # in the model's own dtype: a float64 or bf16 model refuses a float32 input
        probe(torch.empty(1, in_channels, *probe_size, device="meta", dtype=dtype))
    for hook in hooks:
        hook.remove()
    return tuple(multiple)  # type: ignore[return-value]


def _stride(module: nn.Module) -> tuple[int, int, int]:
    return tuple(module.stride) if isinstance(module, nn.Conv3d) else check_pool(module)  # type: ignore

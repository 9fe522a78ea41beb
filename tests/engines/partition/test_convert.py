"""partition_model: what it swaps, what it refuses (naming the module), and required_multiple."""

from __future__ import annotations

import pytest
import torch
from monai.networks.blocks.activation import GEGLU
from monai.networks.nets import DynUNet
from torch import nn

from engines.partition.conv import HaloConv3d, HaloConvTranspose3d
from engines.partition.convert import partition_model, required_multiple
from engines.partition.mesh import SpatialMesh
from engines.partition.models import MODELS, MULTIPLES, build_model
from engines.partition.norm import GlobalInstanceNorm3d

MESH = SpatialMesh((2, 1, 1), rank=0)  # arithmetic only: no process group needed to convert


@pytest.mark.parametrize("name", MODELS)
def test_models_convert_keeping_parameters_and_state_dict_keys(name):
    multiple = MULTIPLES[name]  # what the layout checks assume without torch
    model = build_model(name, out_channels=3, width=4)
    part = partition_model(model, MESH)
    assert part.state_dict().keys() == model.state_dict().keys()
    for (key, a), b in zip(part.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b), key
    kinds = {type(m) for m in part.modules()}
    assert HaloConv3d in kinds and GlobalInstanceNorm3d in kinds
    assert nn.Conv3d not in kinds and nn.InstanceNorm3d not in kinds
    assert any(isinstance(m, nn.Conv3d) and type(m) is nn.Conv3d for m in model.modules())  # a copy
    assert required_multiple(model) == (multiple,) * 3


def test_unet_up_convolutions_are_the_haloed_kernel_3_kind():
    part = partition_model(build_model("unet", width=4), MESH)
    ups = [m for m in part.modules() if isinstance(m, HaloConvTranspose3d)]
    assert ups and all(m.kernel_size == (3, 3, 3) and m.geometry.halos == {0: (0, 1)} for m in ups)


def test_inplace_conversion_returns_the_same_object_and_shares_parameters():
    model = build_model("dynunet", width=4)
    params = list(model.parameters())
    part = partition_model(model, MESH, inplace=True)
    assert part is model
    assert all(p is q for p, q in zip(part.parameters(), params, strict=True))


@pytest.mark.parametrize(("model", "path", "what"), [
    (nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.Flatten(), nn.Linear(2, 2)), "1 (Flatten)",
     "no partition"),
    (nn.Sequential(nn.Conv3d(1, 2, 2, padding=0)), "0 (Conv3d)", "even kernel|tile"),
    (nn.Sequential(nn.MaxPool3d(3, stride=2)), "0 (MaxPool3d)", "kernel == stride"),
    (nn.Sequential(nn.Upsample(size=(8, 8, 8))), "0 (Upsample)", "fixed output size"),
    (nn.Sequential(nn.Conv3d(1, 1, 3, padding=1, padding_mode="reflect")), "0 (Conv3d)", "zero padding"),
    (nn.Sequential(nn.Dropout3d(0.5)), "0 (Dropout3d)", "whole channels"),
    (nn.Sequential(nn.Softmax(dim=2)), "0 (Softmax)", "dim 2"),
    (DynUNet(3, 1, 2, [3, 3, 3], [1, 2, 2], [2, 2], deep_supervision=True), "<model> (DynUNet)",
     "deep supervision"),
    (nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), GEGLU()), "1 (GEGLU)", "no partition"),  # halves W
    (nn.Sequential(nn.MaxPool3d(2, return_indices=True)), "0 (MaxPool3d)", "indices would be the block's"),
])
def test_unsupported_modules_are_refused_naming_path_and_class(model, path, what):
    with pytest.raises(ValueError, match=what) as info:
        partition_model(model, MESH)
    assert path in str(info.value)


class _Wrapper(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Conv3d(1, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) * 2


def test_unknown_containers_are_refused_unless_allowed():
    with pytest.raises(ValueError, match=r"<model> \(_Wrapper\).*allow="):
        partition_model(_Wrapper(), MESH)
    assert isinstance(partition_model(_Wrapper(), MESH, allow=[_Wrapper]).inner, HaloConv3d)


def test_a_block_not_divisible_by_a_stride_is_refused_naming_the_layer_and_the_multiple():
    part = partition_model(nn.Sequential(nn.MaxPool3d(2)), MESH)
    with pytest.raises(ValueError, match=r"^0 \(PartitionedMaxPool3d\).*7 voxels deep along D.*stride 2.*"
                                         r"pad_to_multiple"):
        part(torch.zeros(1, 1, 7, 8, 8))
    # deep in a network, the layer's own stride is not what the block must be a multiple of
    net = partition_model(nn.Sequential(nn.MaxPool3d(2), nn.MaxPool3d(2), nn.MaxPool3d(2)), MESH)
    with pytest.raises(ValueError, match=r"^2 \(PartitionedMaxPool3d\).*downsampling, 8 voxels along D"):
        net(torch.zeros(1, 1, 12, 8, 8))


@pytest.mark.parametrize(("layers", "multiple"), [
    ([nn.Conv3d(1, 1, 3, stride=3, padding=1), nn.Conv3d(1, 1, 3, stride=3, padding=1)], (9, 9, 9)),
    ([nn.Conv3d(1, 1, 3, stride=3, padding=1), nn.Conv3d(1, 1, 3, stride=2, padding=1)], (6, 6, 6)),
    ([nn.Conv3d(1, 1, 3, stride=(2, 2, 1), padding=1), nn.MaxPool3d((2, 1, 1))], (4, 2, 1)),
])
def test_required_multiple_for_strides_that_do_not_divide_a_power_of_two(layers, multiple):
    assert required_multiple(nn.Sequential(*layers)) == multiple


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_required_multiple_of_a_model_in_another_dtype(dtype):
    """The probe runs in the model's own dtype (a float64 model refuses a float32 input)."""
    assert required_multiple(build_model("basicunet", out_channels=2, width=2).to(dtype)) == (16, 16, 16)


def test_a_halo_deeper_than_the_block_is_refused_naming_the_layer():
    part = partition_model(nn.Sequential(nn.Conv3d(1, 1, 7, padding=3)), MESH)
    with pytest.raises(ValueError, match=r"^0 \(HaloConv3d\): its halo of 3 slices along D.*\(2 slices"):
        part(torch.zeros(1, 1, 2, 8, 8))


@pytest.mark.parametrize("act", ["SWISH", "MEMSWISH", "MISH", "HARDTANH", ("softmax", {"dim": None})])
def test_monai_and_torch_voxelwise_activations_are_kept(act):
    from monai.networks.nets import UNet

    if act == "HARDTANH":
        model = nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.Hardtanh())
    else:
        model = UNet(3, 1, 2, (4, 8), (2,), act=act)
    part = partition_model(model, MESH)
    assert any(isinstance(m, HaloConv3d) for m in part.modules())


def test_model_names_build():
    assert set(MODELS) == {"basicunet", "unet", "dynunet"}
    with pytest.raises(ValueError, match="unknown model"):
        build_model("vnet")

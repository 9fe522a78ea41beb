"""The MONAI 3D segmentation networks the partitioned trainer offers, sized by one base width."""

from __future__ import annotations

import contextlib
import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported when a model is built, so the GUI can list MODELS without it
    from torch import nn

MODELS = ("basicunet", "unet", "dynunet")
# What each network's block extents must be a multiple of (its total downsampling), known without torch;
# tests/engines/partition/test_convert.py checks them against required_multiple.
MULTIPLES = {"basicunet": 16, "unet": 8, "dynunet": 8}


def build_model(name: str, *, in_channels: int = 1, out_channels: int = 2, width: int = 8,
                dropout: float = 0.0) -> nn.Module:
    """A MONAI network with feature counts scaled from `width` (the first level's channels).

    - "basicunet": BasicUNet, features (w, w, 2w, 4w, 8w, w), four 2x max-poolings, transposed-conv up.
    - "unet": UNet, channels (w, 2w, 4w, 8w), strides 2, two residual units per level; its up path uses
      ConvTranspose3d with kernel 3, stride 2, padding 1, output_padding 1 (partitioned with a one-slice
      halo).
    - "dynunet": DynUNet (nnU-Net style), filters (w, 2w, 4w, 8w), kernel 3, strides (1, 2, 2, 2),
      transposed-conv up with kernel 2.
    All use instance normalisation. Required block multiple: 16 for basicunet, 8 for the others.
    """
    from monai.networks.nets import BasicUNet, DynUNet, UNet

    if name == "basicunet":
        # BasicUNet prints its features on construction; stdout carries job events, so keep it quiet.
        with contextlib.redirect_stdout(io.StringIO()):
            return BasicUNet(spatial_dims=3, in_channels=in_channels, out_channels=out_channels,
                             features=(width, width, 2 * width, 4 * width, 8 * width, width), dropout=dropout)
    if name == "unet":
        return UNet(spatial_dims=3, in_channels=in_channels, out_channels=out_channels,
                    channels=(width, 2 * width, 4 * width, 8 * width), strides=(2, 2, 2), num_res_units=2,
                    dropout=dropout)
    if name == "dynunet":
        return DynUNet(spatial_dims=3, in_channels=in_channels, out_channels=out_channels,
                       kernel_size=[3] * 4, strides=[1, 2, 2, 2], upsample_kernel_size=[2, 2, 2],
                       filters=[width, 2 * width, 4 * width, 8 * width], dropout=dropout or None)
    raise ValueError(f"unknown model {name!r}; choose one of {MODELS}")

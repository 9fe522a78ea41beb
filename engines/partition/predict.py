"""Labels for a whole volume from a trained network: partitioned over the job's ranks, or in one process
with MONAI's sliding-window inference (when no ranks are at hand, or the volume is smaller than the
mesh's blocks need), written as NIfTI with the image's affine."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engines.partition.checkpoint import load_checkpoint
from engines.partition.mesh import SpatialMesh
from engines.partition.models import build_model
from engines.partition.pad import pad_to_multiple


@torch.no_grad()
def predict_partitioned(model: nn.Module, block: np.ndarray, mesh: SpatialMesh, device: torch.device | str
                        ) -> np.ndarray | None:
    """Argmax labels of a partitioned model over a whole volume, each rank of the replica giving its block.

    Parameters
    ----------
    model : nn.Module
        Partitioned over `mesh` (partition_model); put in eval mode for the call.
    block : ndarray, shape (d, h, w)
        This rank's block of the volume (mesh.block_slices), normalised like the training input; the
        volume's extents are multiples of the mesh x the model's downsampling.

    Returns
    -------
    ndarray, shape (D, H, W), uint8 on the replica's first rank; None on the others.
    """
    was_training = model.training
    model.eval()
    try:
        x = torch.from_numpy(np.ascontiguousarray(block))[None, None].to(device)
        labels = model(x).argmax(1)[0].to(torch.uint8)
    finally:
        model.train(was_training)
    whole = mesh.gather(labels) if mesh.distributed else labels
    return None if whole is None else whole.cpu().numpy()


def load_trained_model(out: str | os.PathLike, *, device: torch.device | str = "cpu"
                       ) -> tuple[nn.Module, dict]:
    """The plain (unpartitioned) network of a training folder's checkpoint, and the job's config."""
    checkpoint = load_checkpoint(out, map_location=device)
    config = checkpoint.config
    model = build_model(config["model"], in_channels=config.get("in_channels", 1),
                        out_channels=config["classes"], width=config["width"])
    model.load_state_dict(checkpoint.weights)
    return model.to(device).eval(), config


@torch.no_grad()
def predict_sliding_window(out: str | os.PathLike, image: np.ndarray, *,
                           roi_size: tuple[int, int, int] | None = None, overlap: float = 0.25,
                           device: torch.device | str = "cpu") -> np.ndarray:
    """Labels of a whole volume in one process, window by window (MONAI sliding_window_inference).

    Parameters
    ----------
    out : path
        The training output folder (its checkpoint holds the weights and the normalisation).
    image : ndarray, shape (D, H, W)
        Raw intensities, on the grid the network was trained on.
    roi_size : (int, int, int), optional
        Window; by default the training crop, capped at the volume padded to the model's multiple.

    Returns
    -------
    ndarray, shape (D, H, W), uint8.
    """
    from monai.inferers import sliding_window_inference

    model, config = load_trained_model(out, device=device)
    multiple = config["multiple"]
    mean, std = np.float32(config["mean"]), np.float32(config["std"])
    normalised = (np.asarray(image, dtype=np.float32) - mean) / std
    padded = pad_to_multiple(normalised, multiple, value=float(-config["mean"] / config["std"]))
    if roi_size is None:
        roi_size = tuple(min(c, n) for c, n in zip(config["crop"], padded.shape, strict=True))
    x = torch.from_numpy(np.ascontiguousarray(padded))[None, None].to(device)
    logits = sliding_window_inference(x, roi_size, 1, model, overlap=overlap, mode="gaussian")
    labels = logits.argmax(1)[0].to(torch.uint8).cpu().numpy()
    return labels[: image.shape[0], : image.shape[1], : image.shape[2]]


def write_labels(labels: np.ndarray, affine: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a label volume as NIfTI with the image's affine (so it overlays the image exactly)."""
    from engines.io import write_volume
    from engines.volume import Volume

    write_volume(Volume(data=np.asarray(labels, dtype=np.uint8), affine=affine), path)
    return Path(path)


def predict_volume(out: str | os.PathLike, image_path: str, labels_path: str | os.PathLike, *,
                   device: torch.device | str = "cpu") -> Path:
    """Read an image, predict its labels with a training folder's checkpoint (sliding window), write them."""
    from engines.io import read_volume

    volume = read_volume(image_path)
    labels = predict_sliding_window(out, np.asarray(volume.data), device=device)
    return write_labels(labels, volume.affine, labels_path)

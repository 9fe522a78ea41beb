"""A few training steps and a prediction of the partitioned job on one CUDA GPU (NCCL): tools/gpu_check.sh.

The GPU image has torch but not the medical-image readers, so this drives engines.partition.train's
`train` and the prediction directly on .npy volumes (a phantom of nested balls), as each train-seg rank
does after OUT/data is prepared. Prints one JSON document: the job's events, the prediction window chosen
from the measured memory, and the Dice of the prediction against the phantom's labels.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engines.events import StopRequest
from engines.partition.convert import partition_model
from engines.partition.data import BlockFile, JobData
from engines.partition.mesh import SpatialMesh
from engines.partition.predict import load_trained_model, predict_partitioned, prediction_window
from engines.partition.train import TrainPlan, train

SIZE, CROP, STEPS = 192, 96, 30


def main() -> int:
    if not torch.cuda.is_available():
        print("needs a CUDA GPU", file=sys.stderr)
        return 2
    device = torch.device("cuda", 0)
    grid = np.mgrid[:SIZE, :SIZE, :SIZE].astype(np.float32) - SIZE / 2
    radius = np.sqrt((grid ** 2).sum(0))
    labels = ((radius < SIZE / 3).astype(np.uint8) + (radius < SIZE / 6)).astype(np.uint8)
    image = (labels - labels.mean()) / labels.std() + np.random.default_rng(0).normal(0, 0.3, labels.shape)
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "image.npy", image.astype(np.float32))
        np.save(Path(tmp) / "labels.npy", labels)
        data = JobData(BlockFile(Path(tmp) / "image.npy"), BlockFile(Path(tmp) / "labels.npy"), (SIZE,) * 3,
                       np.eye(4), 0.0, 1.0, (0, 1, 2))
        config = {"model": "basicunet", "width": 8, "in_channels": 1, "classes": 3, "mesh": "1x1x1",
                  "steps": STEPS, "lr": 3e-3, "crop": [CROP] * 3, "seed": 0, "image": "phantom",
                  "labels": "phantom", "image_shape": [SIZE] * 3, "mean": 0.0, "std": 1.0,
                  "multiple": [16, 16, 16]}
        store = dist.FileStore(str(Path(tmp) / "store"), 1)
        dist.init_process_group("nccl", store=store, rank=0, world_size=1)
        try:
            events = io.StringIO()
            with contextlib.redirect_stdout(events):
                train(TrainPlan(config, data, (1, 1, 1), 1, (CROP,) * 3, None), StopRequest(), device,
                      checkpoint_every=0, checkpoint_minutes=0, out=tmp, predict=False)
            model, _ = load_trained_model(tmp, device=device)
            mesh = SpatialMesh((1, 1, 1))
            net = partition_model(model, mesh)
            window = prediction_window(net, data.image, (CROP,) * 3, (16, 16, 16), mesh, device)
            predicted = predict_partitioned(net, data.image, window, mesh, device)
        finally:
            dist.destroy_process_group()
    both = [(predicted == c, labels == c) for c in range(3)]
    dice = [2 * float(np.sum(p & t)) / float(np.sum(p) + np.sum(t)) for p, t in both]
    lines = [json.loads(line) for line in events.getvalue().splitlines() if line.startswith("{")]
    print(json.dumps({"gpu": torch.cuda.get_device_name(), "events": lines, "window": list(window),
                      "dice": dice}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

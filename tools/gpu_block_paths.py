"""The split-block code paths on one CUDA GPU (NCCL), for tools/gpu_check.sh.

One GPU holds one NCCL rank (NCCL refuses two ranks on one device), so `partition-check --ranks 1` runs a
1x1x1 mesh whose layers take the plain code paths. This compares each model on the one-block mesh of
benchmarks/partition_gpu.py that takes a split block's paths instead - halo convolutions with zero slabs,
norms with all-reduced statistics - against the whole network, on CUDA, in float64 and IEEE float32.
What it cannot cover is the neighbours' data itself: halo sends and receives between GPUs. Prints one JSON
list; exits 1 when a comparison is outside tolerance.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.partition_gpu import BlockPathsMesh
from engines.partition.check import compare_models, use_ieee_float32
from engines.partition.models import MODELS, build_model


def main() -> int:
    use_ieee_float32()  # as partition-check compares float32 on a GPU
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        dist.init_process_group("nccl", store=dist.FileStore(str(Path(tmp) / "store"), 1), rank=0,
                                world_size=1)
        try:
            for name in MODELS:
                for dtype in (torch.float64, torch.float32):
                    torch.manual_seed(0)
                    model = build_model(name, in_channels=1, out_channels=3, width=2)
                    result = compare_models(model, BlockPathsMesh((1, 1, 1)), dtype=dtype, device="cuda")
                    results.append({"model": name, "dtype": str(dtype).removeprefix("torch."), **result})
        finally:
            dist.destroy_process_group()
    print(json.dumps(results))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

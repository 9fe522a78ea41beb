#!/usr/bin/env bash
# Issue 3's checks on one CUDA GPU, in one go: the partitioned code on NCCL, benchmarks/partition_gpu.py
# (the README's GPU table), and a short training + prediction on CUDA. Not yet run anywhere; the steps'
# timeouts add up to 9 minutes (30 + 60 + 60 + 60 + 240 + 90 s), inside one device command's 10.
#
# Results go to $OUT (the device tool's output folder; /tmp/gpu_check elsewhere):
#   gpu.txt, check_float32.json, check_float64.json, block_paths.json, partition_gpu.json + .md,
#   train_smoke.json, log.txt (8 files: the device tool's limit)
#
# The GPU image has torch but not MONAI. Here, once, fetch its wheel into the ignored .whl/ folder
# (Python 3.12 there), then run this with .whl carried:
#   mkdir -p .git/info && echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl monai==1.6.1
#   device run: command "bash tools/gpu_check.sh", carry [".whl"], timeout_s 600
set -u
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
unset NCCL_DEBUG  # its lines would go to stdout, into the JSON files
# Large blocks (5-11 GiB tensors at 448^3) fragment the caching allocator; this changes no measured peak.
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True

checks() {
    if compgen -G ".whl/*.whl" > /dev/null; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || return 1
    fi
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
    timeout 30 python3 -c "import torch, monai; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'cudnn', torch.backends.cudnn.version(), 'monai', monai.__version__)" || return 1

    for dtype in float32 float64; do  # one GPU: one rank, on NCCL with CUDA tensors (plain code paths)
        echo "== partition-check $dtype"
        timeout 60 python3 main.py partition-check --ranks 1 --mesh 1x1x1 --model basicunet --backend nccl \
            --dtype "$dtype" --json > "$OUT/check_$dtype.json"
        echo "exit $?"; cat "$OUT/check_$dtype.json"
    done

    echo "== tools/gpu_block_paths.py (a split block's code paths; no neighbours on one GPU)"
    timeout 60 python3 tools/gpu_block_paths.py > "$OUT/block_paths.json"
    echo "exit $?"; cat "$OUT/block_paths.json"

    echo "== benchmarks/partition_gpu.py"  # writes its JSON after every case; starts none after 170 s
    timeout 240 python3 benchmarks/partition_gpu.py --budget-s 170 --out "$OUT/partition_gpu.json" \
        | tee "$OUT/partition_gpu.md"
    echo "exit ${PIPESTATUS[0]}"

    echo "== tools/gpu_train_smoke.py"
    timeout 90 python3 tools/gpu_train_smoke.py > "$OUT/train_smoke.json"
    echo "exit $?"
    python3 -c "import json; d = json.load(open('$OUT/train_smoke.json')); print('window', d['window'], \
'dice', d['dice'])"
}

checks 2>&1 | tee "$OUT/log.txt"  # a pipe, not exec > >(tee): the log is complete when the script ends

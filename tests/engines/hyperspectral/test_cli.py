"""`main.py hsi-bench` and `hsi-demo` as a user runs them (subprocess, --quick)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
KEYS = {"method", "per_class_train", "OA", "AA", "kappa", "per_class_accuracy", "seconds"}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return {**os.environ, "TESSERA_CACHE": str(tmp_path_factory.mktemp("cache")), "OMP_NUM_THREADS": "1"}


def _run(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


@pytest.mark.parametrize("method", ["gmlc", "svm", "cnn"])
def test_bench_demo_json(env: dict, method: str) -> None:
    proc = _run(
        env, "hsi-bench", "demo", "--per-class", "25", "--method", method, "--seed", "0", "--quick", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert set(doc) == KEYS
    assert doc["method"] == method and doc["per_class_train"] == 25
    assert 0.3 < doc["OA"] <= 1 and 0 < doc["AA"] <= 1 and -1 <= doc["kappa"] <= 1
    assert len(doc["per_class_accuracy"]) == 11 and "Broad-leaf soybean" in doc["per_class_accuracy"]
    assert doc["seconds"] > 0


def test_bench_official_split_and_events(env: dict, tmp_path: Path) -> None:
    proc = _run(
        env,
        "hsi-bench",
        "demo",
        "--split",
        "25",
        "--method",
        "gmlc",
        "--quick",
        "--events",
        "--save-map",
        str(tmp_path / "map.tif"),
    )
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events[0]["event"] == "start" and "Train25.mat" in events[0]["split"]
    assert any(e["event"] == "progress" and e["stage"] == "predicting" for e in events)
    assert events[-1]["event"] == "done" and events[-1]["result"]["map"] == str(tmp_path / "map.tif")
    assert (tmp_path / "map.tif").is_file()


def test_bad_input_exits_2(env: dict, tmp_path: Path) -> None:
    (tmp_path / "x.mat").write_bytes(b"garbage" * 30)
    proc = _run(env, "hsi-bench", str(tmp_path / "x.mat"), "--method", "svm", "--json")
    assert proc.returncode == 2 and "not a MATLAB .mat file" in proc.stderr and proc.stdout == ""


def test_demo_writer(env: dict, tmp_path: Path) -> None:
    proc = _run(env, "hsi-demo", str(tmp_path / "scene"), "--size", "32", "24", "--json")
    assert proc.returncode == 0, proc.stderr
    paths = json.loads(proc.stdout)
    for key in ("mat", "gt_mat", "envi", "gt_envi", "train25", "test300"):
        assert Path(paths[key]).is_file()


def test_benchmark_script_summarises_seeds(env: dict, tmp_path: Path) -> None:
    out = tmp_path / "hsi.json"
    args = ["--quick", "--methods", "gmlc", "--per-class", "25", "--seeds", "0,1", "--no-speed"]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "hsi_benchmark.py"), *args, "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["complete"] and [r["seed"] for r in doc["runs"]] == [0, 1]
    oa = [r["OA"] for r in doc["runs"]]
    assert doc["summary"]["gmlc/25"]["OA"] == pytest.approx([sum(oa) / 2, abs(oa[0] - oa[1]) / 2])
    assert "| gmlc |" in proc.stdout and "--methods gmlc" in doc["command"]

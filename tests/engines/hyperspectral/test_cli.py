"""`main.py hsi-bench` and `hsi-demo` as a user runs them (subprocess, --quick)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
BENCHMARK = ROOT / "benchmarks" / "hsi_benchmark.py"
KEYS = {"method", "per_class_train", "OA", "AA", "kappa", "per_class_accuracy", "seconds"}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return {**os.environ, "TESSERA_CACHE": str(tmp_path_factory.mktemp("cache")), "OMP_NUM_THREADS": "1"}


def _run(env: dict, *args: str, script: Path = ROOT / "main.py") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(script), *args],
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
    assert events[0]["event"] == "start"
    assert any(e["event"] == "progress" and e["stage"] == "looking for no-data pixels" for e in events)
    assert any(e["event"] == "log" and "Train25.mat" in e["message"] for e in events)
    assert "Train25.mat" in events[-1]["result"]["split"]
    assert any(e["event"] == "progress" and e["stage"] == "predicting" for e in events)
    assert events[-1]["event"] == "done" and events[-1]["result"]["map"] == str(tmp_path / "map.tif")
    assert (tmp_path / "map.tif").is_file()


def test_sigterm_during_the_svm_grid_search_exits_0_soon(env: dict) -> None:
    import signal
    import time

    args = ["hsi-bench", "demo", "--method", "svm", "--per-class", "100", "--quick", "--events"]
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        for line in proc.stdout:
            event = json.loads(line)
            if event["event"] == "progress" and event["stage"] == "grid search":
                break
        proc.send_signal(signal.SIGTERM)
        t = time.monotonic()
        rest, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "cancelled: stopped during grid search" in stderr, stderr
    assert time.monotonic() - t < 20 and '"done"' not in rest


def test_bad_input_exits_2(env: dict, tmp_path: Path) -> None:
    (tmp_path / "x.mat").write_bytes(b"garbage" * 30)
    proc = _run(env, "hsi-bench", str(tmp_path / "x.mat"), "--method", "svm", "--json")
    assert proc.returncode == 2 and "not a MATLAB .mat file" in proc.stderr and proc.stdout == ""


def test_failure_is_an_error_event(env: dict, tmp_path: Path) -> None:
    (tmp_path / "x.mat").write_bytes(b"garbage" * 30)
    proc = _run(env, "hsi-bench", str(tmp_path / "x.mat"), "--method", "svm", "--events")
    assert proc.returncode == 2 and "not a MATLAB .mat file" in proc.stderr
    last = json.loads(proc.stdout.splitlines()[-1])
    assert last["event"] == "error" and "not a MATLAB .mat file" in last["message"]


def test_demo_into_the_cache_with_events(env: dict, tmp_path: Path) -> None:
    cached = {**env, "TESSERA_CACHE": str(tmp_path / "cache")}
    args = ("hsi-demo", "--cached", "--events", "--size", "20", "16")
    done = []
    for _ in range(2):
        proc = _run(cached, *args)
        assert proc.returncode == 0, proc.stderr
        events = [json.loads(line) for line in proc.stdout.splitlines()]
        assert [e["event"] for e in events] == ["start", "progress", "progress", "done"]
        done.append((events[-1]["result"], Path(events[-1]["result"]["mat"]).stat().st_mtime_ns))
    assert done[0] == done[1]  # written once, then found (same file, not rewritten)
    assert Path(done[0][0]["mat"]).is_relative_to(tmp_path / "cache")
    proc = _run(env, "hsi-demo", "--events")
    assert proc.returncode == 2 and "give either a FOLDER or --cached" in proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["event"] == "error"


def test_demo_writer(env: dict, tmp_path: Path) -> None:
    proc = _run(env, "hsi-demo", str(tmp_path / "scene"), "--size", "32", "24", "--json")
    assert proc.returncode == 0, proc.stderr
    paths = json.loads(proc.stdout)
    for key in ("mat", "gt_mat", "envi", "gt_envi", "train25", "test300"):
        assert Path(paths[key]).is_file()


def test_benchmark_script_summarises_seeds(env: dict, tmp_path: Path) -> None:
    out = tmp_path / "hsi.json"
    args = ["--quick", "--methods", "gmlc", "--per-class", "25", "--seeds", "0,1", "--no-speed"]
    proc = _run(env, *args, "--out", str(out), script=BENCHMARK)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["complete"] and [r["seed"] for r in doc["runs"]] == [0, 1]
    oa = [r["OA"] for r in doc["runs"]]
    # mean and sample SD (ddof=1): for two values |a - b| / sqrt(2)
    assert doc["summary"]["gmlc/25"]["OA"] == pytest.approx([sum(oa) / 2, abs(oa[0] - oa[1]) / 2**0.5])
    assert "| gmlc |" in proc.stdout and "--methods gmlc" in doc["command"]


def test_benchmark_summary_from_stored_runs(env: dict, tmp_path: Path) -> None:
    runs = [
        {
            "method": m,
            "per_class_train": n,
            "seed": seed,
            "OA": oa,
            "AA": oa - 0.01,
            "kappa": oa - 0.1,
            "fit_seconds": 1.0 + seed,
        }
        for m, n, seed, oa in [
            ("svm", 25, 0, 0.80),
            ("svm", 25, 1, 0.84),
            ("svm", 25, 2, 0.89),
            ("svm", 50, 0, 0.90),
            ("cnn", 25, 0, 0.95),
            ("cnn", 25, 1, 0.97),
        ]
    ]
    out = tmp_path / "hsi.json"
    out.write_text(
        json.dumps(
            {
                "scene": {"size": [30, 20]},
                "command": "x",
                "runs": runs,
                "summary": {},
                "full_scene_prediction": [],
                "machine": {"cpus": 99},
            }
        )
    )
    proc = _run(env, "--summarise", "--out", str(out), script=BENCHMARK)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    oa = [0.80, 0.84, 0.89]
    mean = sum(oa) / 3
    sd = (sum((v - mean) ** 2 for v in oa) / 2) ** 0.5
    assert doc["summary"]["svm/25"]["OA"] == pytest.approx([mean, sd])
    assert doc["summary"]["svm/50"]["OA"] == [pytest.approx(0.90), None]  # one seed: no SD
    assert doc["machine"] == {"cpus": 99} and doc["markdown"] in proc.stdout
    rows = proc.stdout.splitlines()
    assert "| svm | 84.33 ± 4.51<br>AA 83.33 / κ 0.743 | 90.00<br>AA 89.00 / κ 0.800 |" in rows
    assert "| cnn | 96.00 ± 1.41<br>AA 95.00 / κ 0.860 |  |" in rows


def test_sigterm_while_building_the_demo_leaves_nothing_in_the_cache(env: dict, tmp_path: Path) -> None:
    import signal
    import time

    cache = tmp_path / "cache"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "hsi-demo", "--cached", "--events", "--size", "300", "300"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**env, "TESSERA_CACHE": str(cache)},
        cwd=ROOT,
    )
    try:
        for line in proc.stdout:
            if json.loads(line)["event"] == "progress":
                break
        time.sleep(1.0)  # into the build
        proc.send_signal(signal.SIGTERM)
        rest, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "cancelled: stopped while building the scene" in stderr, stderr
    assert '"done"' not in rest
    assert not cache.exists() or list(cache.iterdir()) == []  # no half-written farmland-v* folder


def test_save_map_never_lands_on_an_input(env: dict, tmp_path: Path) -> None:
    import hashlib

    import numpy as np
    import tifffile

    rng = np.random.default_rng(0)
    tifffile.imwrite(tmp_path / "c.tif", rng.random((20, 16, 8), np.float32), photometric="minisblack",
                     planarconfig="contig")
    tifffile.imwrite(tmp_path / "c_gt.tif", rng.integers(1, 4, (20, 16)).astype(np.uint8))
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
    for target in ("c.tif", "c_gt.tif"):
        proc = _run(env, "hsi-bench", str(tmp_path / "c.tif"), "--method", "gmlc", "--per-class", "5",
                    "--quick", "--json", "--save-map", str(tmp_path / target))
        assert proc.returncode == 2 and "would overwrite your data" in proc.stderr, proc.stderr
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()} == before


def test_demo_writer_keeps_split_files_it_did_not_write(env: dict, tmp_path: Path) -> None:
    import numpy as np
    import scipy.io

    splits = tmp_path / "Training samples and test samples"
    splits.mkdir()
    scipy.io.savemat(splits / "Train25.mat", {"LKtrain25": np.ones((4, 4), np.uint8)})  # a real WHU-Hi file
    before = (splits / "Train25.mat").read_bytes()
    proc = _run(env, "hsi-demo", str(tmp_path), "--size", "16", "16", "--json")
    assert proc.returncode == 2 and "Train25.mat" in proc.stderr and "overwrite" in proc.stderr
    assert (splits / "Train25.mat").read_bytes() == before


@pytest.mark.parametrize(("target", "message"),
                         [("nowhere/map.tif", "does not exist"), ("map.png", r"\.tif")])
def test_a_map_that_cannot_be_written_is_refused_before_training(env: dict, tmp_path: Path, target: str,
                                                                 message: str) -> None:
    import numpy as np
    import tifffile

    rng = np.random.default_rng(0)
    tifffile.imwrite(tmp_path / "c.tif", rng.random((20, 16, 8), np.float32), photometric="minisblack",
                     planarconfig="contig")
    tifffile.imwrite(tmp_path / "c_gt.tif", rng.integers(1, 4, (20, 16)).astype(np.uint8))
    proc = _run(env, "hsi-bench", str(tmp_path / "c.tif"), "--method", "gmlc", "--per-class", "5", "--events",
                "--save-map", str(tmp_path / target))
    assert proc.returncode == 2 and re.search(message, proc.stderr), proc.stderr
    assert str(tmp_path / target) in proc.stderr
    assert '"progress"' not in proc.stdout  # nothing was trained or predicted first


def test_a_missing_official_split_is_named_before_the_cube_is_read_through(env: dict) -> None:
    proc = _run(env, "hsi-bench", "demo", "--split", "7", "--method", "gmlc", "--quick", "--events")
    assert proc.returncode == 2 and "no official split file Train7.mat" in proc.stderr
    assert '"progress"' not in proc.stdout and '"start"' not in proc.stdout


def _rare_class_files(folder: Path, n_rare: int) -> Path:
    """x.mat + x_gt.mat: two classes of 600 pixels and one of `n_rare` (SYNTHETIC)."""
    import numpy as np
    import scipy.io

    rng = np.random.default_rng(0)
    gt = np.zeros((40, 30), np.uint8)
    gt[:20], gt[20:] = 1, 2
    gt[5, 5 : 5 + n_rare] = 3
    cube = (rng.random((4, 10))[gt] * 100 + rng.normal(0, 5, (40, 30, 10))).astype(np.float32)
    scipy.io.savemat(folder / "x.mat", {"x": cube})
    scipy.io.savemat(folder / "x_gt.mat", {"x_gt": gt})
    return folder / "x.mat"


def test_gmlc_with_a_one_pixel_class_exits_2_naming_the_class(env: dict, tmp_path: Path) -> None:
    cube = _rare_class_files(tmp_path, 1)
    proc = _run(env, "hsi-bench", str(cube), "--method", "gmlc", "--json")
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert str(cube) in proc.stderr and "class 3 has 1 training pixel" in proc.stderr
    assert "needs at least 2" in proc.stderr and "Error" not in proc.stderr


def test_json_shows_small_class_counts_and_notes(env: dict, tmp_path: Path) -> None:
    cube = _rare_class_files(tmp_path, 4)
    proc = _run(env, "hsi-bench", str(cube), "--method", "gmlc", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert set(doc) >= KEYS and doc["per_class_train"] == 25
    assert doc["train_counts"] == {"Class 1": 25, "Class 2": 25, "Class 3": 2}
    assert doc["test_counts"]["Class 3"] == 2 and doc["settings"] == {"components": 1}
    assert any("1 principal component instead of 2" in n for n in doc["notes"])
    text = _run(env, "hsi-bench", str(cube), "--method", "gmlc")
    assert text.returncode == 0 and "note: GMLC used 1 principal component instead of 2" in text.stdout


def test_json_says_why_the_svm_grid_search_was_skipped(env: dict, tmp_path: Path) -> None:
    cube = _rare_class_files(tmp_path, 1)
    proc = _run(env, "hsi-bench", str(cube), "--method", "svm", "--quick", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["train_counts"]["Class 3"] == 1 and doc["test_counts"]["Class 3"] == 0
    assert "class 3 has 1 training pixel" in doc["grid_search_skipped"]
    assert doc["settings"] == {"C": 100.0, "gamma": "scale"}
    assert any("1 pixel: 1 train, 0 test: not scored" in n for n in doc["notes"])
    text = _run(env, "hsi-bench", str(cube), "--method", "svm", "--quick")
    assert "note: SVM grid search skipped" in text.stdout and "train on half" not in text.stdout

"""How long the GUI thread is held at once while the workbench does its usual work: the longest gap between
ticks of a 10 ms timer, per phase, and how many gaps passed 100 ms (the brief's limit).

    .venv/bin/python benchmarks/gui_stalls.py                 # the run quoted in the README
    .venv/bin/python benchmarks/gui_stalls.py --steps 4       # shorter training phases

Phases, in one fresh process (under xvfb-run when there is no display) with every dock: start-up with the
demo data (the window shown, the demo's three layers read and added); the Hyperspectral dock opening a
200 x 160 cube of the SYNTHETIC farmland scene, then a second one replacing it; Train 3D's 2-rank job on
the demo (MNI152 T1 and its tissue labels) for `--steps` steps and its prediction, once with the job niced
(as the app runs it) and once at the GUI's own priority. For the training phases the table also gives the
metric plot's redraw times (matplotlib's Agg draw), which share the machine with the ranks.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a plain script from anywhere

from benchmarks.report import command_line, run_gui_child, write_results  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "gui_stalls.json"
TICK_MS = 10
LIMIT_MS = 100
CHILD_TIMEOUT_S = 1800


def child(steps: int) -> list[dict]:
    """In a fresh process: run the phases (see the module docstring) and return one record per phase."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    import app.jobs
    from app.demo import T1_NAME, TISSUE_NAME, open_demo
    from app.viewer import freeze_startup_objects
    from engines.datasets.farmland import write_demo_scene
    from widgets.workbench import open_workbench

    app_ = QApplication.instance() or QApplication([])
    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(1000 * (now - last[0]) - TICK_MS)
        last[0] = now

    timer = QTimer()
    timer.setInterval(TICK_MS)
    timer.timeout.connect(tick)
    timer.start()
    draws: list[float] = []
    agg_draw = FigureCanvasAgg.draw

    def timed_draw(canvas: FigureCanvasAgg) -> None:
        t = time.perf_counter()
        agg_draw(canvas)
        draws.append(1000 * (time.perf_counter() - t))

    FigureCanvasAgg.draw = timed_draw

    def wait(condition, timeout: float, settle: float = 1.0) -> None:
        deadline = time.perf_counter() + timeout
        while not condition():
            if time.perf_counter() > deadline:
                raise RuntimeError("a phase did not finish in time")
            app_.processEvents()
            time.sleep(0.002)
        end = time.perf_counter() + settle
        while time.perf_counter() < end:
            app_.processEvents()
            time.sleep(0.002)

    records = []

    def phase(name: str, start, condition, timeout: float) -> None:
        gaps.clear()
        draws.clear()
        last[0] = t0 = time.perf_counter()
        start()
        wait(condition, timeout)
        records.append({"phase": name, "seconds": round(time.perf_counter() - t0, 1),
                        "longest_gap_ms": round(max(gaps, default=0.0)),
                        "gaps_over_limit": sum(g > LIMIT_MS for g in gaps),
                        "plot_draws": len(draws),
                        "plot_draw_mean_ms": round(sum(draws) / len(draws), 1) if draws else None,
                        "plot_draw_max_ms": round(max(draws), 1) if draws else None})
        print(json.dumps(records[-1]), file=sys.stderr, flush=True)

    v = open_workbench()  # the window is built before the event loop runs: not a stall anyone sees
    freeze_startup_objects()  # as main.py does
    v.window._qt_window.resize(1400, 900)
    phase("start-up: window shown, demo data read and added", lambda: open_demo(v),
          lambda: len(v.layers) == 3, 120)
    t1, tissue = v.layers[T1_NAME], v.layers[TISSUE_NAME]
    docks = v.window.dock_widgets
    hsi, train = docks["Hyperspectral"], docks["Train 3D (partitioned)"]
    with tempfile.TemporaryDirectory(prefix="tessera_bench_") as tmp:
        cubes = [write_demo_scene(Path(tmp) / f"scene{i}", size=(200, 160), seed=i, splits=())["envi"]
                 for i in range(2)]
        hsi.parent().raise_()
        for i, cube in enumerate(cubes):
            phase("hyperspectral: open a 200 x 160 x 270 cube" if i == 0 else
                  "hyperspectral: a second cube replaces it", lambda cube=cube: hsi.load(str(cube)),
                  lambda cube=cube: hsi.cube is not None and hsi.path == str(cube), 120)
        train.parent().raise_()
        train.steps_spin.setValue(steps)
        for niceness in (app.jobs.JOB_NICENESS, 0):
            app.jobs.JOB_NICENESS = niceness
            train.image_choice.set_layer(t1)  # (the choices follow the layer selection)
            train.labels_choice.set_layer(tissue)
            train.out_edit.setText(str(Path(tmp) / f"train_nice{niceness}"))
            before = train.prediction_layer
            phase(f"train 3D: demo, 2 ranks, {steps} steps + prediction (job at nice {niceness})",
                  train.start, lambda before=before: _trained(train, before), CHILD_TIMEOUT_S / 3)
    v.close()
    return records


def _trained(train, before) -> bool:
    """The Train 3D dock's job is over and a new prediction (not `before`) added; raises if the job did not
    start or failed."""
    if train.last_message and not train.panel.running:
        raise RuntimeError(f"the training job failed: {train.last_message}")
    return train.prediction_layer not in (None, before) and not train.panel.running


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="training steps per Train 3D phase")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.steps)), flush=True)
        return 0
    records = run_gui_child(Path(__file__).resolve(), ["--steps", str(args.steps)], CHILD_TIMEOUT_S + 60)
    rows = ["| phase | s | longest GUI gap ms | gaps > 100 ms | plot redraws: n, mean, max ms |",
            "|---|---|---|---|---|"]
    for r in records:
        draws = (f"{r['plot_draws']}, {r['plot_draw_mean_ms']:.0f}, {r['plot_draw_max_ms']:.0f}"
                 if r["plot_draws"] else "–")
        rows.append(f"| {r['phase']} | {r['seconds']:.1f} | {r['longest_gap_ms']} | {r['gaps_over_limit']} | "
                    f"{draws} |")
    table = "\n".join(rows)
    command = command_line("gui_stalls.py", argv)
    print(f"GUI-thread gaps (a {TICK_MS} ms timer's lateness) per phase\n\n{table}\n\nReproduce: {command}")
    write_results(args.out, {"benchmark": "gui_stalls", "command": command, "steps": args.steps,
                             "tick_ms": TICK_MS, "limit_ms": LIMIT_MS, "phases": records,
                             "table_markdown": table}, python=platform.python_version())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Switch a 512^3 int16 volume to 3D in the Tessera viewer: how long the GUI is held until the 3D view is
drawn, how long each redraw takes, and peak memory - with the layer as Tessera builds it (coarser levels
above `app.layers.PREVIEW_VOXELS`, full resolution in 3D only on a hardware renderer: `app.viewer`) and as a
plain single-scale layer (every level but the first dropped).

    nice -n 10 .venv/bin/python benchmarks/view_3d.py          # the run quoted in the README
    .venv/bin/python benchmarks/view_3d.py --size 320           # a quicker smoke test (still multiscale)

The volume is `engines.datasets.phantom.synthetic_ct_phantom` (SYNTHETIC), written as .nii (memory-mapped
when read). Each case runs in a fresh process (under xvfb-run when there is no display): it opens the file
with `app.viewer.open_paths`, waits for the first slice, then sets `viewer.dims.ndisplay = 3` and stops the
clock at the end of the last busy pass of the event loop after that (napari converts and uploads the
texture, then renders; the loop counts as done after a draw and a second idle), and records the longest
single pass (how long the GUI was held at once); then it turns the camera three times and times each
redraw the same way. The OpenGL renderer is recorded: under Xvfb, or on a machine without a GPU, it is
Mesa's llvmpipe (software).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a plain script from anywhere

from benchmarks.report import command_line, run_gui_child, write_results  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "view_3d.json"
CHILD_TIMEOUT_S = 600
CASES = ("tessera", "single-scale")


def child(path: str, case: str) -> dict:
    """In a fresh process: open `path`, switch to 3D and turn the camera (see the module docstring)."""
    from qtpy.QtWidgets import QApplication

    import app.layers
    import app.viewer
    from app.viewer import make_viewer, open_paths

    if case == "single-scale":
        app.layers.PREVIEW_VOXELS = 1 << 62
    viewer = make_viewer(show=True)
    viewer.window._qt_window.resize(1200, 900)
    qt = QApplication.instance()
    draws: list[float] = []
    viewer.window._qt_viewer.canvas._scene_canvas.events.draw.connect(  # after the scene is drawn
        lambda event: draws.append(time.perf_counter()), position="last")

    def settled(t0: float) -> tuple[float, float]:
        """Run the event loop until a draw has come after `t0` and it has been idle for a second; return the
        time from `t0` to the end of its last busy pass, and its longest pass (the GUI held at once)."""
        busy_until = time.perf_counter()
        longest = busy_until - t0  # the change itself, made before the call
        deadline = t0 + CHILD_TIMEOUT_S
        while not ([d for d in draws if d > t0] and time.perf_counter() - busy_until > 1.0):
            if time.perf_counter() > deadline:
                raise RuntimeError("no draw within the time limit")
            before = time.perf_counter()
            qt.processEvents()
            after = time.perf_counter()
            longest = max(longest, after - before)
            if after - before > 0.02:
                busy_until = after
            time.sleep(0.002)
        return busy_until - t0, longest

    done: dict = {}
    open_paths(viewer, [path], on_done=lambda p, layers: done.update(layers=layers, t=time.perf_counter()))
    while not done:
        qt.processEvents()
        time.sleep(0.005)
    if not done["layers"]:
        raise RuntimeError(f"opening {path} failed")
    (layer,) = done["layers"]
    settled(done["t"])  # the first slice drawn
    t = time.perf_counter()
    viewer.dims.ndisplay = 3
    to_3d, held_3d = settled(t)
    redraws = []
    for azimuth in (30, 60, 90):
        t = time.perf_counter()
        viewer.camera.angles = (0, 20, azimuth)
        redraws.append(settled(t)[0])
    shapes = layer.level_shapes if layer.multiscale else [layer.data.shape]
    levels = [[int(n) for n in shape] for shape in shapes]
    software = app.viewer.software_opengl()  # asks the renderer's name, if lock_detail has not
    result = {
        "case": case,
        "renderer": app.viewer._renderer[0],
        "software_opengl": software,
        "levels": levels,
        "shape_in_3d": levels[layer.data_level] if layer.multiscale else levels[0],
        "seconds_to_3d": round(to_3d, 2),
        "longest_gui_stall_3d_s": round(held_3d, 2),
        "redraw_seconds_median": round(statistics.median(redraws), 2),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }
    viewer.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="example: nice -n 10 .venv/bin/python benchmarks/view_3d.py")
    parser.add_argument("--size", type=int, default=512, help="edge of the cubic volume (default 512)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child)), flush=True)
        return 0

    from engines.datasets.phantom import synthetic_ct_phantom
    from engines.io import write_volume

    cases = []
    with tempfile.TemporaryDirectory(prefix="tessera_bench_") as tmp:
        path = Path(tmp) / "phantom.nii"
        write_volume(synthetic_ct_phantom((args.size,) * 3, seed=0), path)
        for case in CASES:
            cases.append(run_gui_child(Path(__file__).resolve(), [str(path), case], CHILD_TIMEOUT_S + 60))
            print(json.dumps(cases[-1]), file=sys.stderr)
    rows = ["| layer | renderer | shown in 3D | to 3D s | longest GUI stall s | redraw s (median of 3) "
            "| peak RSS MiB |", "|---|---|---|---|---|---|---|"]
    for c in cases:
        shown = "x".join(map(str, c["shape_in_3d"]))
        rows.append(f"| {c['case']} | {c['renderer'].split(' (')[0]} | {shown} | {c['seconds_to_3d']:.1f} "
                    f"| {c['longest_gui_stall_3d_s']:.1f} | {c['redraw_seconds_median']:.2f} "
                    f"| {c['peak_rss_mib']} |")
    table = "\n".join(rows)
    command = "nice -n 10 " + command_line("view_3d.py", argv)
    print(f"Switch a SYNTHETIC {args.size}^3 int16 volume to 3D\n\n{table}\n\nReproduce: {command}")
    write_results(args.out, {"benchmark": "view_3d", "command": command, "size": args.size, "cases": cases,
                             "table_markdown": table}, python=platform.python_version())
    return 0


if __name__ == "__main__":
    sys.exit(main())

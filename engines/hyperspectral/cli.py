"""`hsi-bench` (one run of the WHU-Hi protocol) and `hsi-demo` (write the SYNTHETIC demo scene's files)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable
from functools import wraps

from engines.errors import InputError
from engines.events import StopRequest, emit
from engines.files import check_output, make_output_folder, refuse_overwrite
from engines.hyperspectral.protocol import Cancelled
from engines.memory import peak_rss_mb

QUICK_DEMO_SIZE = (138, 100)  # LongKou's aspect at 1/4 scale: what --quick runs on for `demo`
# What `hsi-bench --json` prints (the contract); `--events` gives the full result.
JSON_KEYS = ("method", "per_class_train", "OA", "AA", "kappa", "per_class_accuracy", "seconds")


def json_document(result: dict) -> dict:
    """`hsi-bench --json`: the contract's keys, plus only where the run departs from the plain protocol:
    ``train_counts``/``test_counts`` ({class name: pixels}) when some class did not train on
    ``per_class_train`` pixels, ``notes`` (what was done differently and why), ``settings`` with them, and
    ``grid_search_skipped`` (why) when the SVM could not search C and gamma."""
    doc = {k: result[k] for k in JSON_KEYS}
    names, n = result["class_names"], result["per_class_train"]
    if any(c != n for c in result["train_counts"] if c > 0) or 0 in result["test_counts"]:
        doc["train_counts"] = dict(zip(names, result["train_counts"], strict=True))
        doc["test_counts"] = dict(zip(names, result["test_counts"], strict=True))
    if result.get("notes"):
        doc["notes"] = list(result["notes"])
        doc["settings"] = result["settings"]
    if result.get("grid_search_skipped"):
        doc["grid_search_skipped"] = result["grid_search_skipped"]
    return doc


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `hsi-bench` and `hsi-demo` parsers."""
    p = subparsers.add_parser(
        "hsi-bench",
        help="classify a hyperspectral cube with the WHU-Hi protocol and report OA/AA/kappa",
        description="Train on N random pixels per class (or official Train<N>/Test<N>.mat split files), "
        "classify the test pixels, report overall/average accuracy, kappa and per-class accuracy.",
        epilog="example: python main.py hsi-bench demo --per-class 25 --method cnn --seed 0 --json\n"
        "         python main.py hsi-bench WHU_Hi_LongKou.mat --split 100 --method svm",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "cube", help="ENVI .hdr, WHU-Hi .mat or .tif cube; 'demo' for the SYNTHETIC farmland scene"
    )
    p.add_argument("--gt", help="ground truth (.mat, single-band ENVI or TIFF) if not <cube>_gt.* beside it")
    p.add_argument("--per-class", type=int, default=25, help="random training pixels per class (default 25)")
    p.add_argument(
        "--split",
        type=int,
        metavar="N",
        help="use the official Train<N>.mat/Test<N>.mat found beside the cube instead of a random draw",
    )
    p.add_argument("--train-file", help="a training split file (.mat label map); with --test-file optionally")
    p.add_argument("--test-file", help="a test split file (default: every other labelled pixel)")
    p.add_argument("--method", choices=("svm", "gmlc", "cnn"), default="svm", help="classifier (default svm)")
    p.add_argument("--seed", type=int, default=0, help="seed of the training-pixel draw and of training")
    p.add_argument(
        "--quick",
        action="store_true",
        help="reduced run for tests: smaller SVM grid, 30 CNN steps; 'demo' is a quarter-size scene",
    )
    p.add_argument(
        "--save-map", metavar="PATH",
        help="write the classification of every pixel as a TIFF (uint8; uint16 for class ids past 255)",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document: method, per_class_train, OA, AA, kappa, per_class_accuracy, seconds "
        "(and train_counts, test_counts, notes, settings when a class is too small for the usual protocol)",
    )
    out.add_argument(
        "--events",
        action="store_true",
        help="print JSON-lines job events (for the GUI); the 'done' event carries every detail "
        "(confusion matrix, split, timings, peak memory)",
    )
    p.set_defaults(func=run_bench)

    d = subparsers.add_parser(
        "hsi-demo",
        help="write the SYNTHETIC farmland demo scene as WHU-Hi .mat files and ENVI",
        description="Write the SYNTHETIC WHU-Hi-like farmland scene (PROSAIL crops + lab spectra; not real "
        "imagery) with its ground truth and Train<N>/Test<N>.mat split files.",
        epilog="example: python main.py hsi-demo ./demo_scene --size 550 400 --seed 0",
    )
    d.add_argument("folder", nargs="?", help="folder to write into (created if missing)")
    d.add_argument(
        "--cached",
        action="store_true",
        help="instead of FOLDER, the demo cache ($TESSERA_CACHE or ~/.cache/tessera): written once, "
        "then reused (what the GUI's Demo scene button loads)",
    )
    d.add_argument(
        "--size",
        type=int,
        nargs=2,
        metavar=("ROWS", "COLS"),
        default=[550, 400],
        help="rows and columns (default 550 400, as WHU-Hi LongKou)",
    )
    d.add_argument("--seed", type=int, default=0)
    out = d.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the written paths as JSON")
    out.add_argument(
        "--events",
        action="store_true",
        help="print JSON-lines job events (for the GUI); 'done' gives the paths",
    )
    d.set_defaults(func=run_demo)


def _error_event(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """With --events, a failure is also an "error" event (DESIGN §3) before main.py reports it."""

    @wraps(run)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except Exception as exc:
            if args.events:
                message = str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
                emit("error", message=message)
            raise

    return wrapper


def _load(args: argparse.Namespace):
    from engines.io.cubes import read_cube

    if args.cube == "demo":
        from engines.datasets.farmland import DEFAULT_SIZE, demo_scene_files

        files = demo_scene_files(QUICK_DEMO_SIZE if args.quick else DEFAULT_SIZE, seed=0)
        return read_cube(files["mat"], gt=args.gt)
    return read_cube(args.cube, gt=args.gt)


def _input_files(cube, args: argparse.Namespace) -> list[str]:
    """Every file the run reads: the cube (an ENVI header and its data), its ground truth, the split files."""
    from engines.io.cube_envi import envi_pair

    splits = [path for pair in cube.meta.get("splits", {}).values() for path in pair.values()]
    files = [cube.source, cube.meta.get("data_file"), cube.meta.get("ground_truth"), args.train_file,
             args.test_file, *splits]
    files = [str(f) for f in files if f]
    return files + [str(part) for f in files if f.lower().endswith(".hdr") for part in envi_pair(f)]


@_error_event
def run_bench(args: argparse.Namespace) -> int:
    """Run one protocol and print the result (text, one JSON document, or job events)."""
    from engines.hyperspectral.bench import no_data_of, run_protocol, split_for

    stop_request = StopRequest().install()
    if args.per_class < 1:
        raise InputError(f"--per-class must be >= 1, got {args.per_class}")
    cube = _load(args)
    if args.save_map:
        check_output(args.save_map, (".tif", ".tiff"), "the class map")
        for source in _input_files(cube, args):
            refuse_overwrite(source, args.save_map)

    def split_without(no_data):
        return split_for(cube, per_class=args.per_class, seed=args.seed, official=args.split,
                         train_file=args.train_file, test_file=args.test_file, no_data=no_data)

    split_without(None)  # the split's files and options checked at once, before a pass over the whole cube
    progress = _event_progress() if args.events else None if args.json else _text_progress()
    if args.events:
        emit("start", method=args.method, cube=args.cube)
    try:
        no_data = no_data_of(cube, progress=progress, stop=lambda: bool(stop_request))
        split = split_without(no_data)
        if args.events:
            emit("log", message=f"split: {split.description}")
        result, class_map = run_protocol(
            cube,
            args.method,
            split,
            seed=args.seed,
            quick=args.quick,
            full_map=bool(args.save_map),
            no_data=no_data,
            progress=progress,
            stop=lambda: bool(stop_request),
        )
    except Cancelled as exc:
        if args.events:
            emit("log", message=f"cancelled: {exc}")
        print(f"cancelled: {exc}", file=sys.stderr)
        return 0
    result["cube"] = args.cube
    result["peak_memory_mb"] = round(peak_rss_mb(), 1)
    if args.save_map:
        import tifffile

        tifffile.imwrite(args.save_map, class_map)
        result["map"] = args.save_map
    if args.events:
        emit("metric", OA=result["OA"], AA=result["AA"], kappa=result["kappa"])
        emit("done", result=result)
    elif args.json:
        print(json.dumps(json_document(result)))
    else:
        _print_table(result)
    return 0


def _throttled(show, steps: int):
    """A progress callback that calls `show(stage, step, total)` only when a stage crosses 1/`steps`."""
    last: dict[str, int] = {}

    def progress(stage: str, step: int, total: int) -> None:
        part = int(steps * step / max(total, 1))
        if last.get(stage) != part:
            last[stage] = part
            show(stage, step, total)

    return progress


def _event_progress():
    return _throttled(lambda stage, step, total: emit("progress", stage=stage, step=step, total=total), 100)


def _text_progress():
    return _throttled(
        lambda stage, step, total: print(f"{stage}: {step}/{total}", file=sys.stderr, flush=True), 10
    )


def _print_table(r: dict) -> None:
    print(f"{r['method']} on {r['cube']} - {r['split']}")
    print(
        f"OA {100 * r['OA']:.2f} %   AA {100 * r['AA']:.2f} %   kappa {r['kappa']:.4f}   "
        f"({r['fit_seconds']:.1f} s fit, {r['predict_seconds']:.1f} s predict)"
    )
    width = max(len(n) for n in r["class_names"])
    for i, name in enumerate(r["class_names"]):
        acc = r["per_class_accuracy"][name]
        print(
            f"  {name:<{width}}  train {r['train_counts'][i]:>5}  test {r['test_counts'][i]:>7}  "
            f"{'-' if acc is None else f'{100 * acc:6.2f} %'}"
        )
    for note in r.get("notes", []):
        if note not in r["split"]:  # the split's own notes are already in its line above
            print(f"note: {note}")
    if r["no_data_pixels"]:
        print(f"{r['no_data_pixels']} pixels without data (the ignore value or NaN) left out, "
              f"{r['no_data_labelled']} of them labelled; 0 in the map")
    print("confusion matrix (rows: truth, columns: prediction, classes 1..C):")
    cm = r["confusion_matrix"]
    cell = max(len(str(v)) for row in cm for v in row) + 1
    for i, row in enumerate(cm, start=1):
        print(f"  {i:>3} " + "".join(f"{v:>{cell}}" for v in row))


@_error_event
def run_demo(args: argparse.Namespace) -> int:
    """Write the demo scene's files (into FOLDER or the cache) and print where they are."""
    rows, cols = args.size
    if rows < 16 or cols < 16:
        raise InputError(f"--size must be at least 16 16, got {rows} {cols}")
    if (args.folder is None) == (not args.cached):
        raise InputError("give either a FOLDER or --cached")

    def stop(*_: object) -> None:  # SIGTERM (the dock's Cancel): unwind, so the build cleans up after itself
        raise Cancelled("stopped while building the scene")

    signal.signal(signal.SIGTERM, stop)
    if args.events:
        emit("start", size=[rows, cols], seed=args.seed)
        emit("progress", stage="building the SYNTHETIC scene", step=0, total=1)
    try:
        from engines.datasets.farmland import demo_scene_files, write_demo_scene

        if args.cached:
            paths = demo_scene_files((rows, cols), seed=args.seed)
        else:
            paths = write_demo_scene(make_output_folder(args.folder), size=(rows, cols), seed=args.seed)
    except Cancelled as exc:
        print(f"cancelled: {exc}", file=sys.stderr)
        return 0
    if args.events:
        emit("progress", stage="building the SYNTHETIC scene", step=1, total=1)
        emit("done", result={k: str(v) for k, v in paths.items()})
    elif args.json:
        print(json.dumps({k: str(v) for k, v in paths.items()}))
    else:
        print(f"SYNTHETIC farmland scene ({rows}x{cols}, seed {args.seed}) written:")
        for k, v in paths.items():
            print(f"  {k:8} {v}")
    return 0

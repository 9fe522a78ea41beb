"""Tessera's entry point: the GUI (default) and the headless CLI subcommands (DESIGN §4).

    python main.py [FILES...] [--demo] [--series UID]      start the workbench
    python main.py COMMAND --help           a subcommand's options, with an example
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys

# Subcommand -> module that defines it (imported only when used, so `info` does not pay for torch).
# Each module has `register(subparsers)`, adding its parser with `set_defaults(func=...)`;
# `func(args) -> int` is the exit code.
COMMANDS: dict[str, str] = {
    "info": "engines.io.cli",
    "sr": "engines.superres.cli",
    "sr-bench": "engines.superres.cli",
    "sr-train": "engines.superres.cli",
    "partition-check": "engines.partition.cli",
    "train-seg": "engines.partition.cli",
    "predict-seg": "engines.partition.cli",
    "hsi-bench": "engines.hyperspectral.cli",
    "hsi-demo": "engines.hyperspectral.cli",
}


def _error(message: str, code: int) -> int:
    print(f"tessera: {message}", file=sys.stderr)
    return code


def run_command(argv: list[str]) -> int:
    """Run one CLI subcommand; bad input exits 2, any other failure 1, without a traceback."""
    from engines.errors import InputError

    parser = argparse.ArgumentParser(prog="main.py", description="Tessera command-line tools.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    importlib.import_module(COMMANDS[argv[0]]).register(subparsers)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        return _error(str(exc), 2)
    except KeyboardInterrupt:
        return _error("interrupted", 1)
    except Exception as exc:  # a failure the user should see as a message, not a traceback
        if os.environ.get("TESSERA_DEBUG"):
            raise
        return _error(f"{type(exc).__name__}: {exc} (set TESSERA_DEBUG=1 for the traceback)", 1)


def run_gui(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="main.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Start the Tessera workbench.\n\nsubcommands (python main.py COMMAND --help):\n  "
        + "\n  ".join(COMMANDS),
        epilog="example: python main.py --demo    |    python main.py scan.nii.gz ./dicom_folder",
    )
    parser.add_argument("files", nargs="*", help="volumes or cubes to open (files or DICOM folders)")
    parser.add_argument("--demo", action="store_true", help="open the built-in demo data")
    parser.add_argument("--series", metavar="UID", help="the series to open from a DICOM folder given "
                        "(default: its largest)")
    first = argv[0] if argv else ""
    bare_word = first and not first.startswith("-") and not any(c in first for c in "/\\.")
    if bare_word and not os.path.exists(first):
        # a mistyped subcommand, not a file: said before its options could be blamed instead
        close = difflib.get_close_matches(first, COMMANDS, n=1)
        what = (f"unknown command {first!r}: did you mean {close[0]!r}?" if close else
                f"{first!r} is neither a command nor a file or folder here")
        return _error(f"{what} (python main.py --help lists the commands)", 2)
    # files and options in any order; after "--" (file names starting with "-") argparse's plain way
    args = parser.parse_args(argv) if "--" in argv else parser.parse_intermixed_args(argv)
    folders = [f for f in args.files if os.path.isdir(f)]
    if args.series and len(folders) != 1:
        return _error(f"--series chooses the series of one DICOM folder; {len(folders)} folders given", 2)

    if sys.platform.startswith("linux") and not any(
            os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
        return _error("no display to open the window on ($DISPLAY and $WAYLAND_DISPLAY are unset): run it "
                      "on a virtual one, `xvfb-run -a python main.py ...` (as `make run` does), or use the "
                      "subcommands, which need none", 1)

    import napari

    from app.viewer import freeze_startup_objects
    from widgets.workbench import open_workbench

    open_workbench(files=args.files, demo=args.demo, series_uid=args.series)
    freeze_startup_objects()
    napari.run()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in COMMANDS:
        return run_command(argv)
    return run_gui(argv)


if __name__ == "__main__":
    sys.exit(main())

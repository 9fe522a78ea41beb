"""`python main.py info PATH [--json] [--series UID] [--refuse-gaps]`: what a volume or cube file holds."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import numpy as np

from engines.io.dicom_series import list_dicom_series
from engines.io.formats import read_volume, supported_formats
from engines.io.summary import describe_cube, describe_volume


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `info` subcommand."""
    parser = subparsers.add_parser(
        "info",
        help="describe a volume or hyperspectral cube: shape, spacing, orientation, value range",
        description=f"Describe a volume ({supported_formats()}) or a hyperspectral cube (ENVI, .mat, "
        "TIFF).\n\nA DICOM series with missing slices still loads: blank slices take their place so every "
        "real slice\nkeeps its true position, and a warning names the gap; --refuse-gaps makes it an error "
        "instead.",
        epilog="example: python main.py info scan.nii.gz --json    |    python main.py info ./dicom_folder",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("path", help="a volume or cube file, or a DICOM folder")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    parser.add_argument("--series", metavar="UID", default=None,
                        help="for a DICOM folder: the SeriesInstanceUID to read (default: the largest)")
    parser.add_argument("--refuse-gaps", action="store_true",
                        help="for DICOM: fail (exit 2) on missing or unevenly spaced slices, not warn")
    parser.set_defaults(func=run)


def _cube_reader() -> Any:
    """engines.io.cubes when it is there (the hyperspectral readers), else None."""
    try:
        from engines.io import cubes
    except ModuleNotFoundError as exc:
        if exc.name != "engines.io.cubes":
            raise
        return None
    return cubes


def run(args: argparse.Namespace) -> int:
    """Print the description of `args.path`; InputError propagates (exit 2)."""
    cubes = _cube_reader()
    if args.series is None and cubes is not None and cubes.is_cube_path(args.path):
        summary = describe_cube(cubes.read_cube(args.path))
        series = []
    else:
        volume = read_volume(args.path, series_uid=args.series, allow_gaps=not args.refuse_gaps)
        summary = describe_volume(volume)
        series = list_dicom_series(args.path) if os.path.isdir(args.path) else []
    if args.json:
        print(json.dumps(summary))
    else:
        print(format_summary(args.path, summary, series))
    return 0


def _numbers(values: list[Any], sep: str = " x ") -> str:
    return sep.join(f"{v:g}" for v in values)


def format_summary(path: str, summary: dict[str, Any], series: list[Any]) -> str:
    """Human-readable lines for a `describe_volume`/`describe_cube` dict (`series`: a DICOM folder's)."""
    lines = [f"{path}", f"  kind:        {summary['kind']}", f"  shape:       {_numbers(summary['shape'])}",
             f"  dtype:       {summary['dtype']}"]
    if summary["kind"] == "volume":
        unit = " HU" if summary["modality"] == "CT" else ""
        value_range = ("no finite values" if summary["min"] is None
                       else f"{summary['min']:g} .. {summary['max']:g}{unit}")
        lines += [
            f"  spacing:     {_numbers(summary['spacing_mm'])} mm",
            f"  orientation: {summary['orientation']}",
            f"  modality:    {summary['modality'] or 'not stated'}",
            f"  values:      {value_range}",
            "  affine (voxel index -> RAS+ mm):",
            *(f"    {row}" for row in np.array2string(np.asarray(summary["affine"]), precision=4,
                                                      suppress_small=True).splitlines()),
        ]
    else:
        wavelengths = summary["wavelength_range_nm"]
        lines += [
            f"  bands:       {summary['bands']}",
            f"  wavelengths: {_numbers(wavelengths, ' .. ') + ' nm' if wavelengths else 'not stated'}",
            f"  classes:     {', '.join(summary['classes']) or 'none'}",
        ]
    if len(series) > 1:
        lines.append(f"  series in this folder ({len(series)}; choose with --series UID):")
        lines += [f"    {info.uid}  {info.modality or '?'}  {info.slices} images  '{info.description}'"
                  for info in series]
    lines.append(f"  warnings:    {len(summary['warnings']) or 'none'}")
    lines += [f"    - {warning}" for warning in summary["warnings"]]
    return "\n".join(lines)

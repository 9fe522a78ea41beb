"""The Tessera window: a napari viewer set up for physical space, with every dock added."""

from __future__ import annotations

import os
from collections.abc import Sequence

import napari
from qtpy.QtCore import QTimer

from app.demo import open_demo
from app.notify import notify_info
from app.viewer import make_viewer, open_paths
from engines.io.cubes import is_cube_path
from widgets.hyperspectral_dock import HyperspectralDock
from widgets.open_dock import OpenDock
from widgets.superres_dock import SuperResolutionDock
from widgets.surface_dock import SurfaceDock
from widgets.train3d_dock import Train3DDock
from widgets.view_dock import ViewDock

# (dock class, title, tabbed): the order here is the order on screen. All sit on the right: Open on top,
# below it View and the task docks as tabs (napari tabs a dock with the last one in its area), so each keeps
# a usable height.
DOCKS = [
    (OpenDock, "Open", False),
    (ViewDock, "View", False),
    (SurfaceDock, "Surface", True),
    (Train3DDock, "Train 3D (partitioned)", True),
    (SuperResolutionDock, "Super-resolution", True),
    (HyperspectralDock, "Hyperspectral", True),
]


def open_workbench(files: Sequence[str] = (), demo: bool = False, series_uid: str | None = None
                   ) -> napari.Viewer:
    """Create the viewer, add the docks, then open `files` (DICOM folders: series `series_uid`, else the
    largest) and/or the demo data.

    Volumes open as layers; a hyperspectral cube (ENVI, .mat, TIFF) opens in the Hyperspectral dock, whose
    tab is then brought to the front (it holds one cube at a time: the first one given).
    """
    viewer = make_viewer()
    widgets = [dock_cls(viewer) for dock_cls, _, _ in DOCKS]
    docks = [viewer.window.add_dock_widget(widget, name=title, area="right", tabify=tabbed)
             for widget, (_, title, tabbed) in zip(widgets, DOCKS, strict=True)]
    cubes = [f for f in files if is_cube_path(f)]
    volumes = [f for f in files if f not in cubes]
    # View's tab in front once the window is laid out (napari shows the last tab added otherwise), or the
    # Hyperspectral dock's when a cube was given.
    front = [dock for dock, (_, _, tabbed) in zip(docks, DOCKS, strict=True) if not tabbed][-1]
    if cubes:
        hyperspectral = next(w for w in widgets if isinstance(w, HyperspectralDock))
        hyperspectral.load(str(cubes[0]))
        front = docks[widgets.index(hyperspectral)]
        if len(cubes) > 1:
            notify_info(f"The Hyperspectral dock holds one cube at a time: opened {cubes[0]}; open the "
                        "others from the dock.")
    QTimer.singleShot(0, front.raise_)
    if demo:
        open_demo(viewer)
    opener = next(w for w in widgets if isinstance(w, OpenDock))
    folders = [f for f in volumes if os.path.isdir(f)] if series_uid else []
    for paths, uid in (([f for f in volumes if f not in folders], None), (folders, series_uid)):
        if paths:  # the Open dock's recent list shows them as they open, as its own opens do
            open_paths(viewer, paths, series_uid=uid, on_done=lambda *_: opener.refresh_recent())
    return viewer

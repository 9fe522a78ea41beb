"""The Tessera window: a napari viewer set up for physical space, with every dock added."""

from __future__ import annotations

from collections.abc import Sequence

import napari
from qtpy.QtCore import QTimer

from app.demo import open_demo
from app.viewer import make_viewer, open_paths
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


def open_workbench(files: Sequence[str] = (), demo: bool = False) -> napari.Viewer:
    """Create the viewer, add the docks, then open `files` and/or the demo data."""
    viewer = make_viewer()
    docks = [viewer.window.add_dock_widget(dock_cls(viewer), name=title, area="right", tabify=tabbed)
             for dock_cls, title, tabbed in DOCKS]
    # View's tab in front once the window is laid out (napari shows the last tab added otherwise).
    front = [dock for dock, (_, _, tabbed) in zip(docks, DOCKS, strict=True) if not tabbed][-1]
    QTimer.singleShot(0, front.raise_)
    if demo:
        open_demo(viewer)
    if files:
        open_paths(viewer, files)
    return viewer

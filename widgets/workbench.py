"""The Tessera window: a napari viewer set up for physical space, with every dock added."""

from __future__ import annotations

from collections.abc import Sequence

import napari

from app.demo import open_demo
from app.viewer import make_viewer, open_paths
from widgets.open_dock import OpenDock
from widgets.surface_dock import SurfaceDock
from widgets.view_dock import ViewDock

# (dock class, title, area): the order here is the order on screen.
DOCKS = [
    (OpenDock, "Open", "right"),
    (ViewDock, "View", "right"),
    (SurfaceDock, "Surface", "right"),
]


def open_workbench(files: Sequence[str] = (), demo: bool = False) -> napari.Viewer:
    """Create the viewer, add the docks, then open `files` and/or the demo data."""
    viewer = make_viewer()
    for dock_cls, title, area in DOCKS:
        viewer.window.add_dock_widget(dock_cls(viewer), name=title, area=area)
    if demo:
        open_demo(viewer)
    if files:
        open_paths(viewer, files)
    return viewer

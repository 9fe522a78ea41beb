"""The viewer shows one space at a time: the volumes' RAS millimetres, or a hyperspectral cube's pixels.

A cube has no physical placement (rows and columns along a flight line, not millimetres of a patient): its
layers drawn over a brain would mean nothing, and napari draws no layers of different units together
("Inconsistent units across layers"). So a layer of the other space that is added or made visible
switches the viewer over: the visible layers of the space left are hidden (and remembered, to be shown
again on the way back), and the view becomes the new space's own - a cube's plane (rows down, columns
across) or the radiological axial plane. A cube's layers carry `PIXELS_KEY` in their metadata
(app.cube_layers, the Hyperspectral dock); millimetre layers are those whose units are all mm (volumes,
labels drawn on them, surfaces). Labels, points or shapes of neither kind added while a cube is shown
(napari's own new layers, drawn on the cube) join the cube; any other layer of neither kind switches and
hides nothing. Removing the last layer of the cube shown brings the volumes back. Docks add the
results of background jobs with `add_quietly`, so that a job finishing does not take the user away.
"""

from __future__ import annotations

import weakref
from typing import Any

import napari
import numpy as np
from napari.layers import Labels, Points, Shapes

from app.cube_layers import PIXELS_KEY
from app.layers import WORLD_AXIS_LABELS
from app.orientation import camera
from app.planes import fit_to, set_plane

HIDDEN_KEY = "hidden_for_other_space"  # metadata flag of a layer a switch hid, shown again on the way back
PIXELS, MILLIMETRES = "pixels", "millimetres"
# Layers a user draws on what is shown: one of these added without a space while a cube is shown is the cube's
DRAWN = (Labels, Points, Shapes)
FIT = 0.95  # a cube fills this much of the canvas along its longer side, as napari's reset_view does

_space: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # viewer -> the space it shows
_switching: weakref.WeakSet = weakref.WeakSet()  # viewers hiding and showing layers for a switch
_replacing: weakref.WeakSet = weakref.WeakSet()  # viewers whose cube is being replaced (`replacing_cube`)
_selected: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # viewer -> {space: layer last selected}


def space_of(layer: Any) -> str | None:
    """PIXELS for a cube's layer, MILLIMETRES for a layer whose units are all mm, else None."""
    if getattr(layer, "metadata", {}).get(PIXELS_KEY):
        return PIXELS
    units = getattr(layer, "units", ())
    if units and all(str(unit) == "millimeter" for unit in units):
        return MILLIMETRES
    return None


def current_space(viewer: napari.components.ViewerModel) -> str | None:
    """The space `viewer` shows (None when `follow_spaces` was never called for it)."""
    return _space.get(viewer)


def show_plane(viewer: napari.components.ViewerModel, plane: str) -> None:
    """`app.planes.set_plane` fitted to the volumes, back in millimetres first when a cube is shown and
    volumes are there (a volume's plane is asked for). With a cube and no volume, a 2D plane is the cube's."""
    if _space.get(viewer) == PIXELS:
        if not any(space_of(layer) == MILLIMETRES for layer in viewer.layers):
            if plane == "3d":
                set_plane(viewer, plane)
            else:
                show_cube_plane(viewer)
            return
        show_space(viewer, MILLIMETRES)
    set_plane(viewer, plane, fit=_shown(viewer, MILLIMETRES))


def _shown(viewer: napari.components.ViewerModel, space: str) -> list:
    return [layer for layer in viewer.layers if layer.visible and space_of(layer) == space]


def replacing_cube(viewer: napari.components.ViewerModel, replacing: bool) -> None:
    """Say that a cube's layers are being replaced by another's (True), or that this is done (False):
    meanwhile, the old cube's last layer going does not bring the volumes back."""
    (_replacing.add if replacing else _replacing.discard)(viewer)


def add_quietly(viewer: napari.components.ViewerModel, layer: Any) -> Any:
    """Add a background job's result without switching space: while the viewer shows the other space, the
    layer comes in hidden, to be shown with its own (a classification map while volumes are shown, a
    prediction or surface while a cube is), and the selection - which the docks' layer choices follow -
    stays where the user left it."""
    own, shown = space_of(layer), _space.get(viewer)
    if not (own is not None and shown is not None and own != shown and layer.visible):
        return viewer.add_layer(layer)
    layer.metadata[HIDDEN_KEY] = True
    layer.visible = False
    selected = viewer.layers.selection.active
    viewer.add_layer(layer)  # napari selects what it adds
    if selected is not None:
        viewer.layers.selection.active = selected
    else:
        viewer.layers.selection.clear()
    return layer


def show_space(viewer: napari.components.ViewerModel, space: str) -> None:
    """Show `space`: hide the visible layers of the other one (remembered), show the layers of this one an
    earlier switch hid, and set this space's view."""
    _switching.add(viewer)
    try:
        for layer in viewer.layers:
            own = space_of(layer)
            if own is not None and own != space and layer.visible:
                layer.metadata[HIDDEN_KEY] = True
                layer.visible = False
            elif own == space and layer.metadata.pop(HIDDEN_KEY, False):
                layer.visible = True
    finally:
        _switching.discard(viewer)
    left = _space.get(viewer)
    _space[viewer] = space
    # the window/level and the docks act on the selection: leave a hidden layer for the one last selected
    # in this space, else its top layer shown
    selected = _selected.setdefault(viewer, {})
    active = viewer.layers.selection.active
    if active is not None and left is not None:
        selected[left] = active
    if active is not None and space_of(active) != space and (shown := _shown(viewer, space)):
        before = selected.get(space)
        viewer.layers.selection.active = before if before in shown else shown[-1]
    if space == MILLIMETRES:
        if viewer.dims.ndim == len(WORLD_AXIS_LABELS):  # a cube's band stack may have named them
            viewer.dims.axis_labels = WORLD_AXIS_LABELS
        set_plane(viewer, "axial", fit=_shown(viewer, MILLIMETRES))
    else:
        show_cube_plane(viewer)


def show_cube_plane(viewer: napari.components.ViewerModel) -> None:
    """A cube's plane, fitted to the cube: its rows (the last world axis but one) down, its columns (the
    last) across."""
    viewer.dims.ndisplay = 2
    viewer.dims.order = tuple(range(viewer.dims.ndim))
    camera(viewer).orientation = ("towards", "down", "right")
    if extents := _fit_cube(viewer):
        _centre_sliders(viewer, extents)


def _fit_cube(viewer: napari.components.ViewerModel) -> list[np.ndarray]:
    """Fit the 2D view to the cube's layers shown (their last two world axes); returns their world extents
    (none: napari's own fit). reset_view's own `layers=` fails on 2D layers (a composite) in a 3D world."""
    viewer.reset_view()
    extents = [layer.extent.world for layer in _shown(viewer, PIXELS)]
    extents = [e for e in extents if np.isfinite(e).all()]  # an empty shapes layer has no extent
    if not extents:
        return []
    low = np.min([e[0, -2:] for e in extents], axis=0)
    high = np.max([e[1, -2:] for e in extents], axis=0)
    cam = camera(viewer)
    cam.center = tuple(float(v) for v in (low + high) / 2)
    viewbox = np.asarray(viewer.canvas.viewbox_size(viewer.layers), dtype=float)
    cam.zoom = FIT * float(np.min(viewbox / np.maximum(high - low, 1.0)))
    return extents


def fit_shown(viewer: napari.components.ViewerModel) -> None:
    """napari's Home for a viewer that follows spaces: fit the layers shown in the space shown. napari's own
    fits every layer, hidden ones and the other space's included (the demo's brain came out at 77 % of the
    zoom, 50 mm off centre). In 3D the camera's angles are reset too, as napari's Home does; nothing else
    (plane, sliders) changes. With nothing shown (or only layers that do not span the world), napari's fit of
    every layer."""
    space = _space.get(viewer)
    if space == PIXELS and viewer.dims.ndisplay == 2:
        _fit_cube(viewer)
        return
    # what is shown of this space, and layers of no space drawn on it (points, shapes in the world's units)
    fit_to(viewer, [layer for layer in viewer.layers if layer.visible and space_of(layer) in (space, None)])


def _centre_sliders(viewer: napari.components.ViewerModel, extents: list[np.ndarray]) -> None:
    """Put the sliders that cube layers of these world `extents` have (the bands of app.cube_layers' stack,
    on world axis 0 like the volumes' R) on their middle: the slider may be anywhere in the volumes' range."""
    for axis in viewer.dims.not_displayed:
        spans = [e[:, axis - (viewer.dims.ndim - e.shape[1])] for e in extents
                 if axis >= viewer.dims.ndim - e.shape[1]]
        if spans:
            viewer.dims.set_point(axis, float(np.round(np.mean([(lo + hi) / 2 for lo, hi in spans]))))


def follow_spaces(viewer: napari.components.ViewerModel) -> None:
    """Switch `viewer` to a layer's space whenever a layer of the other one is added or made visible (it
    shows pixels now if a cube's layer is visible, hiding any visible volume, else millimetres). Calling it
    again does nothing."""
    if viewer in _space:
        return
    showing_cube = any(layer.visible and space_of(layer) == PIXELS for layer in viewer.layers)
    _space[viewer] = PIXELS if showing_cube else MILLIMETRES

    def consider(layer: Any) -> None:
        own = space_of(layer)
        if layer.visible and own is not None and own != _space.get(viewer) and viewer not in _switching:
            show_space(viewer, own)

    def on_inserted(event: Any) -> None:
        layer = event.value
        if isinstance(layer, DRAWN) and space_of(layer) is None and _space.get(viewer) == PIXELS:
            layer.metadata[PIXELS_KEY] = True  # napari's new labels, points or shapes drawn on the cube
        layer.events.visible.connect(lambda visible_event: consider(visible_event.source))
        extent = layer.extent.world
        if layer.visible and space_of(layer) == PIXELS == _space.get(viewer) and np.isfinite(extent).all():
            _centre_sliders(viewer, [extent])  # another layer of the cube shown
        consider(layer)

    def on_removed(event: Any) -> None:
        busy = viewer in _switching or viewer in _replacing
        if (_space.get(viewer) == PIXELS and not busy and not _shown(viewer, PIXELS)
                and any(space_of(layer) == MILLIMETRES for layer in viewer.layers)):
            show_space(viewer, MILLIMETRES)  # the cube shown is gone: back to the volumes it hid

    for layer in viewer.layers:
        layer.events.visible.connect(lambda visible_event: consider(visible_event.source))
    viewer.layers.events.inserted.connect(on_inserted)
    viewer.layers.events.removed.connect(on_removed)
    if showing_cube and _shown(viewer, MILLIMETRES):  # both drawn at once (plain napari opened them first)
        show_space(viewer, PIXELS)

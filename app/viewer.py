"""The Tessera viewer: a napari viewer set up for a RAS world in millimetres, and opening files off the GUI
thread.

`make_viewer` gives the window its title, world axis labels, a scale bar (mm, from the layers' units),
the radiological axial plane, orientation letters on the canvas edges and a cursor readout in the status
bar; a large volume shows its full resolution in 3D only where the renderer can draw it (`lock_detail`);
napari's Home button and Ctrl+R fit the layers shown (`home`), not hidden ones too.
`open_paths` reads each path with `engines.io.read_volume` in a napari `thread_worker` and adds the
layers when the read is done; a failure becomes a notification naming the file, and the viewer stays usable.
"""

from __future__ import annotations

import gc
import os
import warnings
from collections.abc import Callable, Sequence

import napari
import numpy as np
from napari.components import ViewerModel
from napari.layers import Layer
from napari.qt.threading import create_worker
from napari.utils.action_manager import action_manager
from superqt.utils import WorkerBase
from vispy.gloo import gl
from vispy.gloo.context import get_current_canvas

from app import settings
from app.cursor import CursorReadout
from app.layers import WORLD_AXIS_LABELS, LayerDataTuple, layer_volume, read_layers, series_label
from app.notify import notify_failure, notify_warning
from app.orientation import OrientationLetters, camera
from app.planes import set_plane
from app.spaces import current_space, fit_shown, follow_spaces

TITLE = "Tessera"
HOME_ACTION = "napari:reset_view"  # what napari's Home button and Ctrl+R trigger
# With a hardware renderer, volumes up to this many voxels show their full resolution in 3D too (512^3: a
# 512 MiB float32 texture); larger ones, and any volume on software OpenGL, their coarsest level.
HARDWARE_3D_VOXELS = 1 << 27
# GL_RENDERER names of software OpenGL (Mesa's llvmpipe, softpipe and swrast; Windows' GDI; SwiftShader).
SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swrast", "software rasterizer", "gdi generic", "swiftshader")
_renderer: list[str] = []  # GL_RENDERER, once known


def freeze_startup_objects() -> None:
    """Collect garbage once, then leave every object alive now (modules: napari, Qt, torch, MONAI, some
    600 000 objects) out of all later collections (`gc.freeze`). Call once, when the app has started.

    napari runs a full collection on every layer it removes, and Python runs full ones by itself from time
    to time: scanning those objects held the GUI thread 300-370 ms each time. Objects frozen are never
    freed, so this is for the app's own start-up, not for every viewer a test makes.
    """
    gc.collect()
    gc.freeze()


def unproxied(viewer: napari.Viewer) -> napari.Viewer:
    """The viewer itself when napari hands a dock a `PublicOnlyProxy` of it (plain napari's Plugins menu):
    the proxy wraps each layer anew on every lookup, so a dock's layer choices would never be the layers
    the layer list holds. Tessera's own window passes the viewer itself."""
    return getattr(viewer, "__wrapped__", viewer)


def make_viewer(show: bool = True) -> napari.Viewer:
    """A new napari viewer set up by `configure_viewer`."""
    viewer = napari.Viewer(title=TITLE, show=show)
    configure_viewer(viewer)
    return viewer


def configure_viewer(viewer: napari.Viewer) -> None:
    """Set up an existing viewer for a 3D RAS-mm world: axis labels, scale bar, axial plane, orientation
    letters, cursor readout, "a layer made visible is brought into the slice", and a hyperspectral cube
    shown apart from the volumes (app.spaces)."""
    # Oblique volumes keep their residual rotation in the affine (app.layers): napari then shows the nearest
    # voxel slice and warns on every slice; the Open dock reports the obliquity once instead.
    warnings.filterwarnings("ignore", message="Non-orthogonal slicing", category=UserWarning)
    viewer.title = TITLE
    viewer.dims.ndim = 3
    viewer.dims.axis_labels = WORLD_AXIS_LABELS
    scale_bar(viewer).visible = True
    set_plane(viewer, "axial")
    # Both are parented to Qt widgets of the window, which keep them (and their napari connections) alive.
    OrientationLetters(viewer)
    CursorReadout(viewer)
    _follow_visibility(viewer)
    follow_spaces(viewer)
    for layer in viewer.layers:
        lock_detail(layer)
    viewer.layers.events.inserted.connect(lambda event: lock_detail(event.value))
    # napari's Home button and its Ctrl+R run this action; it is napari's for viewers set up elsewhere
    action_manager.register_action(name=HOME_ACTION, command=home, description="Fit the layers shown",
                                   keymapprovider=ViewerModel)


def home(viewer: ViewerModel) -> None:
    """The Home button and Ctrl+R: fit the layers shown (app.spaces.fit_shown) in a viewer set up by
    `configure_viewer`; napari's own reset in any other (Tessera as a plugin of someone's napari)."""
    if current_space(viewer) is None:
        viewer.reset_view()
    else:
        fit_shown(viewer)


def software_opengl() -> bool:
    """True when napari's canvas renders with software OpenGL (no GPU, or a virtual display), where a 3D
    view of a 512^3 volume holds the GUI for 6 s and redraws in 2 s (benchmarks/view_3d.py). Call it in the
    GUI thread once a viewer exists; False when no canvas is there to ask."""
    if not _renderer:
        canvas = get_current_canvas()
        if canvas is None:
            return False
        canvas.set_current()
        _renderer.append(str(gl.glGetParameter(gl.GL_RENDERER)))
    return any(name in _renderer[0].lower() for name in SOFTWARE_RENDERERS)


def full_detail_here(shape: Sequence[int]) -> bool:
    """Whether a volume of `shape` is drawn at full resolution here, 3D included: hardware OpenGL and at most
    `HARDWARE_3D_VOXELS`. Elsewhere its coarser levels (`app.layers.levels`) are used as napari does: the
    coarsest in 3D, in 2D a coarser one only when a slice has more voxels than the canvas has pixels."""
    return not software_opengl() and int(np.prod(shape, dtype=np.int64)) <= HARDWARE_3D_VOXELS


def lock_detail(layer: Layer) -> None:
    """Lock a multiscale volume layer to full resolution where `full_detail_here`, as a single-scale layer
    would be."""
    if (getattr(layer, "multiscale", False) and layer_volume(layer) is not None
            and full_detail_here(layer.level_shapes[0])):
        layer.locked_data_level = 0


def scale_bar(viewer: napari.components.ViewerModel) -> object:
    """The viewer's scale bar overlay (napari >= 0.9 keeps it on `viewer.canvas.overlays`)."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.overlays.scale_bar if canvas is not None else viewer.scale_bar


def _follow_visibility(viewer: napari.components.ViewerModel) -> None:
    def on_visible(event: object) -> None:
        if event.source.visible:
            bring_into_view(viewer, event.source)

    def on_inserted(event: object) -> None:
        event.value.events.visible.connect(on_visible)

    for layer in viewer.layers:
        layer.events.visible.connect(on_visible)
    viewer.layers.events.inserted.connect(on_inserted)


def bring_into_view(viewer: napari.components.ViewerModel, layer: Layer) -> bool:
    """If the current slice misses `layer`, move the sliders to its centre and centre the camera on it.

    Volumes in one RAS world can lie far apart (the demo's CT slice is below the MNI brain); without this,
    making such a layer visible would show nothing. Returns True if the view moved.
    """
    if layer.ndim != viewer.dims.ndim:
        return False
    point = np.asarray(viewer.dims.point, dtype=float)
    data_point = np.asarray(layer.world_to_data(point))
    low, high = layer.extent.data  # first and last voxel centres along each data axis
    hidden = list(viewer.dims.not_displayed)
    # data axis == world axis for layers from app.layers (canonical_view puts voxel axes in RAS order)
    inside = all(low[a] - 0.5 <= data_point[a] <= high[a] + 0.5 for a in hidden)
    if inside:
        return False
    centre = layer.extent.world.mean(axis=0)
    for axis in hidden:
        viewer.dims.set_point(axis, float(centre[axis]))
    cam = camera(viewer)
    cam.center = tuple(float(centre[a]) for a in viewer.dims.displayed)
    return True


def add_layers(viewer: napari.components.ViewerModel,
               layers: Sequence[Layer | LayerDataTuple]) -> list[Layer]:
    """Add layers (or layer data tuples, made into layers here) to `viewer` in the GUI thread."""
    return [viewer.add_layer(layer if isinstance(layer, Layer) else Layer.create(*layer)) for layer in layers]


def make_layers(tuples: Sequence[LayerDataTuple]) -> list[Layer]:
    """Layer objects from data tuples; called in the worker so the GUI thread only inserts them."""
    return [Layer.create(*layer) for layer in tuples]


def _read(path: str, series_uid: str | None, as_labels: bool) -> list[Layer]:
    return make_layers(read_layers(path, series_uid=series_uid, as_labels=as_labels))


def open_paths(viewer: napari.components.ViewerModel, paths: Sequence[str | os.PathLike], *,
               series_uid: str | None = None, as_labels: bool = False,
               on_done: Callable[[str, list[Layer] | None], None] | None = None) -> list[WorkerBase]:
    """Read each path (file or DICOM folder) in a worker thread and add its layer when ready.

    Parameters
    ----------
    viewer : napari viewer
    paths : files or folders, as the user gave them
    series_uid : which DICOM series of a folder (default: the largest)
    as_labels : add a labels layer (a segmentation) instead of an image
    on_done : called in the GUI thread with (path, new layers), or (path, None) after a failure

    Returns
    -------
    The started workers, one per path (tests wait on their `finished` signal).
    A failure (an `InputError` or anything else) is shown as a notification naming the file; no exception
    reaches the caller. The reader's warnings about a file that did open are shown as a warning
    notification. A successful open is added to the recent-files list.
    """
    workers = []
    for path in paths:
        path = os.fspath(path)
        worker = create_worker(_read, path, series_uid, as_labels, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(lambda layers, path=path: _opened(viewer, path, layers, on_done))
        worker.errored.connect(lambda exc, path=path: _failed(path, exc, on_done))
        worker.start()
        workers.append(worker)
    return workers


def _opened(viewer: napari.components.ViewerModel, path: str, new_layers: list[Layer],
            on_done: Callable | None) -> None:
    try:
        layers = add_layers(viewer, new_layers)
        if layers:
            bring_into_view(viewer, layers[0])
    except Exception as exc:  # napari refusing the data must not escape into the event loop
        _failed(path, exc, on_done)
        return
    for layer in layers:  # what reading found (a gap between slices, several series...): said, not buried
        if (volume := layer_volume(layer)) is not None and volume.warnings:
            notify_warning(f"{os.path.basename(path.rstrip('/')) or path}: " + "; ".join(volume.warnings))
    # a DICOM folder: with the series shown, which Recent reopens (not the folder's largest); an unwritable
    # config folder costs the recent list (told), not the open
    volume = layer_volume(layers[0]) if layers and os.path.isdir(path) else None
    if volume is not None and (uid := volume.meta.get("series_uid")):
        settings.add_recent(path, series_uid=str(uid), series=series_label(volume))
    else:
        settings.add_recent(path)
    if on_done is not None:
        on_done(path, layers)


def _failed(path: str, exc: BaseException, on_done: Callable | None) -> None:
    notify_failure(exc, path)
    if on_done is not None:
        on_done(path, None)

"""The built-in demo: real data shipped inside installed packages, each layer named for what it is.

- "MNI152 T1 (template)": nilearn's MNI152 2009 T1 template (real MRI, an average of 152 brains), 1 mm.
- "MNI152 tissue (GM/WM/CSF)": tissue labels on the same grid (argmax of nilearn's GM/WM maps, CSF = rest
  of the brain mask), overlaid at 50 % opacity.
- "pydicom CT_small (real CT slice)": one real CT slice bundled with pydicom, read through
  `engines.io.read_volume` like any user file.

All three sit at their true RAS positions. The CT slice lies outside the MNI brain (below and to the left
of it, z = -75.7 mm), so it is added hidden: making it visible brings its slice into view
(`app.viewer.bring_into_view`), and a notification says so.
"""

from __future__ import annotations

import napari
from napari.layers import Layer
from napari.qt.threading import create_worker
from napari.utils.colormaps import DirectLabelColormap
from qtpy.QtCore import QCoreApplication
from superqt.utils import WorkerBase

from app.layers import LayerDataTuple, image_layer, labels_layer
from app.notify import notify_failure, notify_info
from app.turns import Turns
from app.viewer import add_layers, make_layers

T1_NAME = "MNI152 T1 (template)"
TISSUE_NAME = "MNI152 tissue (GM/WM/CSF)"
# Label value -> colour (engines.datasets.mni152.TISSUE_NAMES: 1 CSF, 2 grey matter, 3 white matter).
TISSUE_COLOURS = {None: "transparent", 0: "transparent", 1: "#3b82f6", 2: "#f59e0b", 3: "#f5f5dc"}
DEMO_NOTE = ("Demo data: MNI152 T1 template with GM/WM/CSF labels (nilearn's bundled files) and pydicom's "
             "CT_small slice. The CT slice lies elsewhere in patient space, so it starts hidden: make it "
             "visible to go to it.")


def mni152_layers() -> list[LayerDataTuple]:
    """The MNI152 T1 image and its tissue labels as layer data tuples (reads nilearn's files: ~1 s)."""
    from engines.datasets.mni152 import load_mni152_t1, load_mni152_tissue_labels

    t1 = image_layer(load_mni152_t1(), name=T1_NAME)
    data, kwargs, kind = labels_layer(load_mni152_tissue_labels(), name=TISSUE_NAME, opacity=0.4)
    kwargs["colormap"] = DirectLabelColormap(color_dict=TISSUE_COLOURS)
    return [t1, (data, kwargs, kind)]


def ct_small_layers(*, visible: bool = True) -> list[LayerDataTuple]:
    """pydicom's bundled CT slice, read through `engines.io.read_volume`, as a layer data tuple."""
    from engines.datasets.pydicom_samples import CT_SMALL_NAME, ct_small_path
    from engines.io import read_volume

    return [image_layer(read_volume(ct_small_path()), name=CT_SMALL_NAME, visible=visible)]


def demo_layers() -> list[LayerDataTuple]:
    """Everything `open_demo` adds, in order: T1, tissue labels, then the CT slice (hidden)."""
    return [*mni152_layers(), *ct_small_layers(visible=False)]


def open_demo(viewer: napari.components.ViewerModel) -> WorkerBase:
    """Load the demo layers in a worker thread and add them to `viewer` when ready, one per turn of the event
    loop (`app.turns`: all three in one slot held the GUI for ~0.5 s); returns the worker."""
    turns = Turns(QCoreApplication.instance())

    def done(new_layers: list[Layer]) -> None:
        def last() -> None:
            viewer.layers.selection.active = new_layers[0]  # window/level and statistics act on the T1
            notify_info(DEMO_NOTE)

        turns.run([*(lambda layer=layer: add_layers(viewer, [layer]) for layer in new_layers), last])

    worker = create_worker(lambda: make_layers(demo_layers()), _start_thread=False, _ignore_errors=True)
    worker.returned.connect(done)
    worker.errored.connect(lambda exc: notify_failure(exc, "demo data"))
    worker.start()
    return worker

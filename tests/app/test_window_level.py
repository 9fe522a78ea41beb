"""Window/level maths and the right-drag callback, driven with simulated napari mouse events (no Qt)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from napari.components import ViewerModel
from napari.utils._proxies import ReadOnlyWrapper
from napari.utils.interactions import (
    mouse_move_callbacks,
    mouse_press_callbacks,
    mouse_release_callbacks,
)

from app.window_level import (
    CT_PRESETS,
    dicom_window,
    from_contrast_limits,
    install_window_level_drag,
    percentile_window,
    set_window_level,
    target_image_layer,
    to_contrast_limits,
)
from engines.volume import Volume


def test_presets_are_the_issue_table():
    assert CT_PRESETS == {
        "brain": (80, 40), "subdural": (200, 75), "stroke": (40, 40), "lung": (1500, -600),
        "mediastinum": (350, 50), "abdomen": (400, 50), "liver": (150, 30), "bone": (1800, 400),
    }


@pytest.mark.parametrize(("name", "limits"), [("lung", (-1350, 150)), ("bone", (-500, 1300)),
                                              ("brain", (0, 80))])
def test_width_level_and_contrast_limits_round_trip(name, limits):
    width, level = CT_PRESETS[name]
    assert to_contrast_limits(width, level) == limits
    assert from_contrast_limits(limits) == (width, level)
    with pytest.raises(ValueError, match="width"):
        to_contrast_limits(0, level)


def test_dicom_window_is_centre_width_swapped_to_width_level():
    volume = Volume(np.zeros((2, 2, 2)), np.eye(4), modality="CT", window=(40.0, 400.0))
    assert dicom_window(volume) == (400.0, 40.0)
    assert dicom_window(Volume(np.zeros((2, 2, 2)), np.eye(4))) is None
    assert dicom_window(None) is None


class _CountingArray:
    """An array-like that records how many voxels were read, as a lazy reader would."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.shape, self.read = data, data.shape, 0

    def __getitem__(self, key):
        out = self.data[key]
        self.read += out.size
        return out


def test_percentile_window_reads_a_subsample_and_agrees_with_the_full_percentiles():
    rng = np.random.default_rng(1)
    data = rng.gamma(2.0, 300.0, size=(160, 150, 140)).astype(np.float32)  # 3.4 M voxels
    lazy = _CountingArray(data)
    width, level = percentile_window(lazy, max_samples=200_000)
    assert lazy.read <= 200_000
    lo, hi = np.percentile(data, [1, 99])
    assert level - width / 2 == pytest.approx(lo, rel=0.05)
    assert level + width / 2 == pytest.approx(hi, rel=0.02)


def test_percentile_window_of_a_flat_image_has_a_positive_width():
    width, level = percentile_window(np.full((5, 5, 5), 7.0))
    assert width > 0 and level == pytest.approx(7.5)


@dataclass
class _Event:
    """The fields of napari's mouse event that the callback reads."""

    type: str
    pos: tuple[float, float]
    button: int = 2
    modifiers: list = field(default_factory=list)
    is_dragging: bool = False
    handled: bool = False


def _drag(viewer: ViewerModel, start, end, button: int = 2, steps: int = 4) -> None:
    press = ReadOnlyWrapper(_Event("mouse_press", start, button), exceptions=("handled",))
    mouse_press_callbacks(viewer, press)
    for t in np.linspace(0, 1, steps + 1)[1:]:
        pos = tuple(np.add(start, t * np.subtract(end, start)))
        move = ReadOnlyWrapper(_Event("mouse_move", pos, button, is_dragging=True), exceptions=("handled",))
        mouse_move_callbacks(viewer, move)
    release = ReadOnlyWrapper(_Event("mouse_release", end, button), exceptions=("handled",))
    mouse_release_callbacks(viewer, release)


@pytest.fixture
def viewer_with_ct():
    viewer = ViewerModel()
    volume = Volume(np.linspace(-1000, 2000, 4 * 5 * 6).reshape(4, 5, 6), np.eye(4), modality="CT")
    layer = viewer.add_image(volume.data, metadata={"volume": volume})
    set_window_level(layer, *CT_PRESETS["abdomen"])
    install_window_level_drag(viewer)
    install_window_level_drag(viewer)  # idempotent
    return viewer, layer


def test_right_drag_right_widens_and_down_raises_the_level(viewer_with_ct):
    viewer, layer = viewer_with_ct
    assert from_contrast_limits(layer.contrast_limits) == (400, 50)
    _drag(viewer, (100, 100), (180, 100))  # right: wider, same level
    width, level = from_contrast_limits(layer.contrast_limits)
    assert width > 400 and level == pytest.approx(50)
    _drag(viewer, (100, 100), (100, 160))  # down: higher level, same width
    width2, level2 = from_contrast_limits(layer.contrast_limits)
    assert width2 == pytest.approx(width) and level2 > 50
    _drag(viewer, (100, 100), (-400, 100))  # far left: narrowest window, never zero or negative
    assert from_contrast_limits(layer.contrast_limits)[0] > 0
    assert viewer.scene.camera.mouse_pan  # restored after the drag


def test_left_drag_and_drawing_modes_are_left_alone(viewer_with_ct):
    viewer, layer = viewer_with_ct
    _drag(viewer, (100, 100), (200, 200), button=1)
    assert from_contrast_limits(layer.contrast_limits) == (400, 50)
    labels = viewer.add_labels(np.zeros((4, 5, 6), dtype=np.uint8))
    labels.mode = "paint"  # right button erases there: not ours
    _drag(viewer, (100, 100), (200, 200))
    assert from_contrast_limits(layer.contrast_limits) == (400, 50)
    labels.mode = "pan_zoom"
    _drag(viewer, (100, 100), (200, 100))
    assert from_contrast_limits(layer.contrast_limits)[0] > 400


def test_target_is_the_selected_image_else_the_top_visible_one():
    viewer = ViewerModel()
    assert target_image_layer(viewer) is None
    bottom = viewer.add_image(np.zeros((3, 3, 3)))
    top = viewer.add_image(np.zeros((3, 3, 3)))
    labels = viewer.add_labels(np.zeros((3, 3, 3), dtype=np.uint8))
    assert viewer.layers.selection.active is labels
    assert target_image_layer(viewer) is top
    top.visible = False
    assert target_image_layer(viewer) is bottom
    viewer.layers.selection.active = top
    assert target_image_layer(viewer) is top

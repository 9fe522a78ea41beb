"""A hyperspectral cube and volumes are shown one space at a time (app.spaces)."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Labels, Layer

from app.cube_layers import PIXELS_KEY, cube_layers
from app.cursor import readout
from app.layers import image_layer, labels_layer
from app.orientation import camera, edge_letters
from app.planes import current_plane
from app.spaces import MILLIMETRES, PIXELS, add_quietly, show_plane, space_of
from app.viewer import add_layers, configure_viewer
from engines.cube import Cube
from engines.volume import Volume

pytestmark = pytest.mark.qt

AFFINE = np.diag([1.0, 1.2, 2.0, 1.0])


@pytest.fixture
def viewer(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    configure_viewer(viewer)
    return viewer


def _volumes(viewer) -> list:
    t1 = Volume(np.random.default_rng(0).normal(100, 10, (20, 24, 16)).astype(np.float32), AFFINE)
    far = Volume(np.zeros((8, 8, 1), np.int16), AFFINE, modality="CT")
    labels = Volume((t1.data > 100).astype(np.uint8), AFFINE)
    layers = add_layers(viewer, [image_layer(t1, name="t1"), labels_layer(labels, name="tissue"),
                                 image_layer(far, name="far away", visible=False)])
    return layers


def napari_layer(data_tuple) -> Layer:
    """A napari layer from a (data, kwargs, type) tuple, as napari makes one from a reader's."""
    return Layer.create(*data_tuple)


def _cube() -> Cube:
    rng = np.random.default_rng(1)
    return Cube(data=rng.random((30, 40, 12)).astype(np.float32), wavelengths_nm=np.linspace(400, 900, 12),
                labels=rng.integers(0, 3, (30, 40)).astype(np.int32), class_names=["Corn", "Water"])


def test_a_cube_hides_the_volumes_and_a_volume_brings_them_back(viewer, qtbot):
    t1, tissue, far = _volumes(viewer)
    assert current_plane(viewer) == "axial" and edge_letters(viewer) is not None
    bands, rgb, truth = add_layers(viewer, cube_layers(_cube(), "field"))
    assert [space_of(layer) for layer in (t1, tissue, bands, rgb, truth)] == [MILLIMETRES] * 2 + [PIXELS] * 3
    assert not t1.visible and not tissue.visible and not far.visible  # the volumes make way
    assert bands.visible and truth.visible and not rgb.visible  # the composite starts hidden, as it came
    assert tuple(viewer.dims.order[-2:]) == (1, 2)  # the cube's rows down, its columns across
    assert edge_letters(viewer) is None  # no R/L, A/P on pixels
    assert readout(viewer, [0.0, 10.0, 10.0]) == ""  # no millimetres either
    t1.visible = True  # the user shows a volume again: back to millimetres
    assert tissue.visible and not far.visible  # what the cube hid comes back, nothing more
    assert not bands.visible and not truth.visible
    assert current_plane(viewer) == "axial" and edge_letters(viewer) is not None
    truth.visible = True  # and to the cube again
    assert bands.visible and truth.visible and not t1.visible and not tissue.visible


def test_a_volume_and_a_cube_opened_before_anything_kept_them_apart_are_parted_then(make_napari_viewer):
    """Plain napari: the plugin's readers add a volume and a cube to one canvas; the Hyperspectral dock,
    added afterwards, calls follow_spaces: the cube is shown, the volume hidden until it is shown again."""
    from app.spaces import follow_spaces, show_space

    viewer = make_napari_viewer()
    volume = Volume(np.ones((6, 7, 8), np.float32), AFFINE)
    t1 = viewer.add_layer(napari_layer(image_layer(volume, name="t1")))
    bands, _, truth = (viewer.add_layer(napari_layer(data)) for data in cube_layers(_cube(), "field"))
    assert t1.visible and bands.visible  # drawn on top of each other
    follow_spaces(viewer)
    assert bands.visible and truth.visible and not t1.visible
    show_space(viewer, MILLIMETRES)
    assert t1.visible and not bands.visible


def test_layers_of_neither_space_switch_nothing(viewer):
    t1, tissue, _ = _volumes(viewer)
    points = viewer.add_points(np.zeros((1, 2)))  # napari's own layer, in pixels
    assert space_of(points) is None
    assert t1.visible and tissue.visible and current_plane(viewer) == "axial"


def test_a_volume_plane_asked_for_on_a_cube_goes_back_to_millimetres(viewer):
    t1, tissue, _ = _volumes(viewer)
    bands, _, truth = add_layers(viewer, cube_layers(_cube(), "field"))
    show_plane(viewer, "coronal")  # the View dock's buttons
    assert t1.visible and tissue.visible and not bands.visible and not truth.visible
    assert current_plane(viewer) == "coronal"
    show_plane(viewer, "sagittal")  # already in millimetres: only the plane changes
    assert t1.visible and current_plane(viewer) == "sagittal"


def test_the_cube_plane_is_fitted_to_its_bands_and_ignores_an_empty_layer(viewer):
    """The plugin's band stack shares world axis 0 with the volumes' R: its slider goes to the middle band.
    An empty regions layer (NaN extent) is left out of the fit."""
    _volumes(viewer)
    viewer.dims.set_point(0, -30.0)  # a sagittal position left of any band
    viewer.add_shapes(ndim=2, name="regions", metadata={PIXELS_KEY: True})
    bands, _, _ = add_layers(viewer, cube_layers(_cube(), "field"))
    assert np.isfinite(camera(viewer).center).all() and np.isfinite(camera(viewer).zoom)
    assert round(viewer.dims.point[0]) == 6  # the middle of 12 bands (0..11), rounded
    np.testing.assert_array_equal(np.asarray(bands._slice.image.raw), np.asarray(bands.data[6]))


def test_each_space_is_fitted_on_its_own_and_keeps_its_axis_names(viewer):
    """A 550 x 400 cube beside a small brain: back on the volumes, the view fits them, not the cube."""
    t1, _, _ = _volumes(viewer)
    big = Cube(data=np.ones((550, 400, 3), np.float32), wavelengths_nm=np.array([450.0, 550.0, 650.0]))
    add_layers(viewer, cube_layers(big, "field"))  # its band stack names the axes band/row/column
    t1.visible = True
    centre = np.asarray(camera(viewer).center[-2:], dtype=float)  # axial: (A, R) on screen
    low, high = t1.extent.world[0, [1, 0]], t1.extent.world[1, [1, 0]]
    assert np.all(centre >= low - 1) and np.all(centre <= high + 1)
    assert tuple(viewer.dims.axis_labels) == ("R", "A", "S")


def test_layers_drawn_on_the_cube_join_it_and_its_end_brings_the_volumes_back(viewer):
    t1, tissue, _ = _volumes(viewer)
    bands, rgb, truth = add_layers(viewer, cube_layers(_cube(), "field"))
    photo = viewer.add_image(np.zeros((5, 5)), name="my photo")  # pixels, but not drawn on the cube
    viewer.layers.selection.active = truth
    viewer._new_labels()  # napari's "new labels" button on the cube: pixel units, no mark of its own
    drawn = viewer.layers[-1]
    assert space_of(drawn) == PIXELS and space_of(photo) is None
    viewer.layers.selection.active = tissue  # a volume chosen ...
    t1.visible = True  # ... and the volumes shown again
    assert not drawn.visible and photo.visible  # the drawing is not left over the brain; the photo stays
    assert viewer.layers.selection.active is tissue
    drawn.visible = True  # back to the cube, and then it goes away altogether
    for layer in (drawn, bands, rgb, truth):
        viewer.layers.remove(layer)
    assert t1.visible and tissue.visible and current_plane(viewer) == "axial"


def test_with_a_cube_and_no_volume_a_plane_button_keeps_the_cubes_plane(viewer):
    add_layers(viewer, cube_layers(_cube(), "field"))
    show_plane(viewer, "axial")
    assert tuple(viewer.dims.order[-2:]) == (1, 2)
    assert tuple(str(d.value) if hasattr(d, "value") else str(d) for d in camera(viewer).orientation) == (
        "towards", "down", "right")


def test_a_job_result_of_the_other_space_comes_in_hidden(viewer):
    t1, _, _ = _volumes(viewer)
    bands, _, _ = add_layers(viewer, cube_layers(_cube(), "field"))  # the cube is shown
    prediction = Labels(np.zeros((20, 24, 16), np.uint8), affine=AFFINE, units=("mm",) * 3, name="prediction")
    viewer.layers.selection.active = bands
    add_quietly(viewer, prediction)
    assert not prediction.visible and bands.visible and not t1.visible  # no switch
    assert viewer.layers.selection.active is bands  # the docks' layer choices follow the selection
    t1.visible = True  # the volumes again: the prediction comes with them
    assert prediction.visible


def test_planes_fit_to_volumes_that_include_a_2d_one(viewer):
    """napari's reset_view(layers=) fails on a layer of fewer dimensions than the world: not fitted."""
    from app.planes import set_plane

    t1, _, _ = _volumes(viewer)
    flat = viewer.add_image(np.zeros((6, 7)), units=("mm", "mm"), name="a 2D mm image")
    for plane in ("coronal", "sagittal", "axial"):
        set_plane(viewer, plane, fit=[flat, t1])
        assert current_plane(viewer) == plane


def _far_volume(viewer):
    """A large volume 400 mm away, hidden: napari's own Home fits it too."""
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = 400.0
    far = Volume(np.zeros((60, 60, 60), np.int16), affine, modality="CT")
    return add_layers(viewer, [image_layer(far, name="far, hidden", visible=False)])[0]


def _press_home(viewer, qtbot, how):
    from qtpy.QtCore import Qt

    if how == "button":
        viewer.window._qt_viewer.viewerButtons.resetViewButton.click()
    else:
        qtbot.keyClick(viewer.window._qt_viewer.canvas.native, Qt.Key.Key_R,
                       Qt.KeyboardModifier.ControlModifier)


@pytest.mark.parametrize("how", ["button", "ctrl+r"])
@pytest.mark.parametrize("ndisplay", [2, 3])
def test_home_fits_the_layers_shown_not_the_hidden_ones(viewer, qtbot, how, ndisplay):
    t1, _, _ = _volumes(viewer)
    _far_volume(viewer)
    viewer.dims.ndisplay = ndisplay
    viewer.reset_view(layers=[t1])  # what Home should give: the brain alone fills the canvas
    expected_centre, expected_zoom = np.asarray(camera(viewer).center), camera(viewer).zoom
    camera(viewer).center = tuple(np.asarray(camera(viewer).center) + 300.0)
    camera(viewer).zoom = expected_zoom / 7
    if ndisplay == 3:
        camera(viewer).angles = (10.0, 20.0, 30.0)
    _press_home(viewer, qtbot, how)
    np.testing.assert_allclose(camera(viewer).center, expected_centre, atol=1e-6)
    assert camera(viewer).zoom == pytest.approx(expected_zoom)
    if ndisplay == 3:
        np.testing.assert_allclose(camera(viewer).angles, (0, 0, 0), atol=1e-9)


def test_home_on_a_cube_fits_the_cube(viewer, qtbot):
    """The cube's rows and columns fill 95 % of the canvas along the tighter side, centred; the band stays."""
    _volumes(viewer)
    _far_volume(viewer)
    bands, _, _ = add_layers(viewer, cube_layers(_cube(), "field"))
    band = viewer.dims.point[0]
    camera(viewer).center = (0.0, 500.0, -500.0)
    camera(viewer).zoom = 0.01
    _press_home(viewer, qtbot, "button")
    low, high = bands.extent.world[0, -2:], bands.extent.world[1, -2:]
    np.testing.assert_allclose(camera(viewer).center[-2:], (low + high) / 2, atol=1e-6)
    viewbox = np.asarray(viewer.canvas.viewbox_size(viewer.layers), dtype=float)
    assert camera(viewer).zoom == pytest.approx(0.95 * np.min(viewbox / (high - low)), rel=1e-6)
    assert viewer.dims.point[0] == band  # the band shown stays


@pytest.mark.parametrize("ndisplay", [2, 3])
def test_home_fits_a_2d_layer_drawn_on_the_volumes_with_them(viewer, qtbot, ndisplay):
    t1, _, _ = _volumes(viewer)
    _far_volume(viewer)
    points = viewer.add_points(np.array([[60.0, 70.0]]), name="a 2D mark beyond the brain")
    viewer.dims.ndisplay = ndisplay
    viewer.reset_view(layers=[t1, points])
    expected_centre, expected_zoom = np.asarray(camera(viewer).center), camera(viewer).zoom
    viewer.reset_view()  # napari's: the hidden volume 400 mm away too
    assert camera(viewer).zoom < expected_zoom / 2
    _press_home(viewer, qtbot, "button")
    np.testing.assert_allclose(camera(viewer).center, expected_centre, atol=1e-6)
    assert camera(viewer).zoom == pytest.approx(expected_zoom)


def test_home_on_a_cube_in_3d_fits_the_cube_not_the_hidden_volumes(viewer, qtbot):
    _volumes(viewer)
    _far_volume(viewer)
    layers = add_layers(viewer, cube_layers(_cube(), "field"))
    assert any(layer.ndim < viewer.dims.ndim for layer in layers)  # the 2D truth map
    viewer.dims.ndisplay = 3
    viewer.reset_view(layers=layers)
    expected_centre, expected_zoom = np.asarray(camera(viewer).center), camera(viewer).zoom
    camera(viewer).zoom = expected_zoom / 50
    _press_home(viewer, qtbot, "ctrl+r")
    np.testing.assert_allclose(camera(viewer).center, expected_centre, atol=1e-6)
    assert camera(viewer).zoom == pytest.approx(expected_zoom)


def test_home_in_a_viewer_not_set_up_by_tessera_is_napari_s_own(make_napari_viewer, viewer, qtbot):
    plain = make_napari_viewer(show=True)
    near = plain.add_image(np.zeros((10, 10)))
    plain.add_image(np.zeros((10, 10)), translate=(300, 300), visible=False)
    plain.reset_view()  # napari's: every layer, the hidden one too
    expected_centre, expected_zoom = np.asarray(camera(plain).center), camera(plain).zoom
    plain.reset_view(layers=[near])
    _press_home(plain, qtbot, "button")
    np.testing.assert_allclose(camera(plain).center, expected_centre, atol=1e-6)
    assert camera(plain).zoom == pytest.approx(expected_zoom)

"""labels_to_mesh / write_mesh against geometry we know: voxelised spheres on rotated, anisotropic grids."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from vtkmodules.util import numpy_support
from vtkmodules.vtkFiltersCore import vtkFeatureEdges, vtkMassProperties
from vtkmodules.vtkIOGeometry import vtkOBJReader, vtkSTLReader
from vtkmodules.vtkIOXML import vtkXMLPolyDataReader

from engines.errors import InputError
from engines.surface import Mesh, labels_to_mesh, mesh_to_polydata, write_mesh

RADIUS = 10.0
SPACING = (0.8, 1.1, 1.5)


def _affine(mirror: bool) -> np.ndarray:
    """Rotated (30°, -20°, 10° xyz) grid with anisotropic spacing; `mirror` flips the first voxel axis."""
    linear = Rotation.from_euler("xyz", [30, -20, 10], degrees=True).as_matrix() @ np.diag(SPACING)
    if mirror:
        linear[:, 0] *= -1
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = [-40.0, 25.0, 12.0]
    return affine


def _sphere_labels(affine: np.ndarray, centres: dict[int, np.ndarray], shape=(40, 32, 26)) -> np.ndarray:
    """Voxels whose centre lies within RADIUS mm of a world centre get that centre's label."""
    index = np.stack(np.meshgrid(*map(np.arange, shape), indexing="ij"), axis=-1).reshape(-1, 3)
    world = index @ affine[:3, :3].T + affine[:3, 3]
    labels = np.zeros(len(index), dtype=np.uint8)
    for value, centre in centres.items():
        labels[np.linalg.norm(world - centre, axis=1) < RADIUS] = value
    return labels.reshape(shape)


def _grid_centre(affine: np.ndarray, shape=(40, 32, 26)) -> np.ndarray:
    return affine[:3, :3] @ ((np.array(shape) - 1) / 2) + affine[:3, 3]


def _open_edges(mesh: Mesh) -> int:
    """Boundary plus non-manifold edges: 0 for a watertight surface."""
    edges = vtkFeatureEdges()
    edges.SetInputData(mesh_to_polydata(mesh))
    edges.BoundaryEdgesOn()
    edges.NonManifoldEdgesOn()
    edges.FeatureEdgesOff()
    edges.ManifoldEdgesOff()
    edges.Update()
    return edges.GetOutput().GetNumberOfCells()


def _signed_volume(mesh: Mesh) -> float:
    """Divergence-theorem volume: positive only when triangles wind counter-clockwise seen from outside."""
    v = mesh.vertices.astype(np.float64)[mesh.faces]
    return float(np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6)


@pytest.mark.parametrize("mirror", [False, True], ids=["det>0", "det<0"])
def test_sphere_lands_in_world_space_closed_with_the_right_volume_and_outward_normals(mirror):
    affine = _affine(mirror)
    centre = _grid_centre(affine)
    labels = _sphere_labels(affine, {1: centre})
    mesh = labels_to_mesh(labels, affine, smoothing_iterations=20, pass_band=0.05)

    assert mesh.vertices.dtype == np.float32 and mesh.vertices.shape[1] == 3
    assert mesh.faces.shape[1] == 3 and set(np.unique(mesh.values)) == {1}
    np.testing.assert_allclose(mesh.vertices.mean(axis=0), centre, atol=0.3)
    radii = np.linalg.norm(mesh.vertices - centre, axis=1)
    assert abs(np.median(radii) - RADIUS) < 0.6

    expected = 4 / 3 * np.pi * RADIUS**3
    mass = vtkMassProperties()
    mass.SetInputData(mesh_to_polydata(mesh))
    mass.Update()
    assert mass.GetVolume() == pytest.approx(expected, rel=0.04)
    assert _signed_volume(mesh) == pytest.approx(mass.GetVolume(), rel=1e-3)  # triangles wound outward

    assert _open_edges(mesh) == 0
    outward = np.einsum("ij,ij->i", mesh.normals, mesh.vertices - centre)
    assert np.all(outward > 0)
    np.testing.assert_allclose(np.linalg.norm(mesh.normals, axis=1), 1.0, atol=1e-4)


def test_smoothing_removes_the_voxel_staircase():
    affine = _affine(False)
    centre = _grid_centre(affine)
    labels = _sphere_labels(affine, {1: centre})
    rough = labels_to_mesh(labels, affine, smoothing_iterations=0)
    smooth = labels_to_mesh(labels, affine, smoothing_iterations=30, pass_band=0.05)
    spread = [np.std(np.linalg.norm(m.vertices - centre, axis=1)) for m in (rough, smooth)]
    assert spread[1] < 0.5 * spread[0]


def test_each_label_is_its_own_closed_surface_and_one_label_can_be_chosen():
    affine = _affine(False)
    centre = _grid_centre(affine, shape=(60, 32, 26))
    axis = affine[:3, 0] / np.linalg.norm(affine[:3, 0])
    shift = (RADIUS + 0.6) * axis  # two spheres 1.2 mm apart along the first voxel axis
    centres = {2: centre - shift, 5: centre + shift}
    labels = _sphere_labels(affine, centres, shape=(60, 32, 26))

    both = labels_to_mesh(labels, affine)
    assert set(np.unique(both.values)) == {2, 5}
    assert _open_edges(both) == 0
    for value, c in centres.items():
        np.testing.assert_allclose(both.vertices[both.values == value].mean(axis=0), c, atol=0.3)

    five = labels_to_mesh(labels, affine, label=5)
    assert set(np.unique(five.values)) == {5}
    np.testing.assert_allclose(five.vertices.mean(axis=0), centres[5], atol=0.3)
    assert len(five.vertices) == np.count_nonzero(both.values == 5)


@pytest.mark.parametrize("dtype", [">i2", ">u2", ">i4", ">i8"])
def test_big_endian_labels_give_the_same_surface(dtype):
    """Big-endian files (MetaImage, NRRD) are read in their own byte order; VTK wants the native one."""
    affine = _affine(False)
    centre = _grid_centre(affine, shape=(60, 32, 26))
    labels = _sphere_labels(affine, {3: centre}, shape=(60, 32, 26))
    native = labels_to_mesh(labels, affine)
    swapped = labels_to_mesh(labels.astype(dtype), affine)
    np.testing.assert_array_equal(swapped.vertices, native.vertices)
    np.testing.assert_array_equal(swapped.faces, native.faces)
    assert set(np.unique(swapped.values)) == {3}


def test_a_label_touching_the_border_still_gives_a_closed_surface():
    labels = np.zeros((6, 7, 8), dtype=np.int16)
    labels[:3, 2:5, :] = 4  # touches three faces of the volume
    mesh = labels_to_mesh(labels, np.diag([2.0, 1.0, 0.5, 1.0]), smoothing_iterations=0)
    assert _open_edges(mesh) == 0
    # Unsmoothed discrete flying edges cut half way between voxel centres: the box -0.5..2.5 etc.
    lo, hi = mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
    np.testing.assert_allclose(lo, [-0.5 * 2, 1.5 * 1, -0.5 * 0.5], atol=1e-5)
    np.testing.assert_allclose(hi, [2.5 * 2, 4.5 * 1, 7.5 * 0.5], atol=1e-5)


def test_decimation_reduces_triangles_and_keeps_the_surface():
    affine = _affine(False)
    centre = _grid_centre(affine)
    labels = _sphere_labels(affine, {1: centre})
    full = labels_to_mesh(labels, affine)
    half = labels_to_mesh(labels, affine, decimate=0.5)
    assert half.n_triangles < 0.6 * full.n_triangles
    assert _open_edges(half) == 0
    np.testing.assert_allclose(half.vertices.mean(axis=0), centre, atol=0.5)


@pytest.mark.parametrize(
    ("suffix", "reader"), [(".stl", vtkSTLReader), (".obj", vtkOBJReader), (".vtp", vtkXMLPolyDataReader)]
)
def test_each_export_format_reads_back_with_vtk(tmp_path, suffix, reader):
    affine = _affine(True)
    mesh = labels_to_mesh(_sphere_labels(affine, {3: _grid_centre(affine)}), affine, decimate=0.3)
    path = write_mesh(mesh, tmp_path / f"sphere{suffix.upper()}")
    assert path.exists()
    read = reader()
    read.SetFileName(str(path))
    read.Update()
    poly = read.GetOutput()
    assert poly.GetNumberOfPoints() == len(mesh.vertices)
    assert poly.GetNumberOfPolys() == mesh.n_triangles
    points = numpy_support.vtk_to_numpy(poly.GetPoints().GetData())
    np.testing.assert_allclose(points.min(axis=0), mesh.vertices.min(axis=0), atol=1e-4)
    if suffix == ".vtp":
        labels = numpy_support.vtk_to_numpy(poly.GetPointData().GetArray("label"))
        assert set(np.unique(labels)) == {3}


def test_bad_inputs_say_what_is_wrong(tmp_path):
    affine = np.eye(4)
    with pytest.raises(InputError, match="empty"):
        labels_to_mesh(np.zeros((4, 4, 4), np.uint8), affine)
    labels = np.zeros((4, 4, 4), np.uint8)
    labels[1:3, 1:3, 1:3] = 1
    with pytest.raises(InputError, match="label 7 is not present"):
        labels_to_mesh(labels, affine, label=7)
    with pytest.raises(InputError, match="3D"):
        labels_to_mesh(labels[0], affine)
    with pytest.raises(InputError, match="integer"):
        labels_to_mesh(labels.astype(np.float32), affine)
    with pytest.raises(InputError, match="singular"):
        labels_to_mesh(labels, np.diag([1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(InputError, match="decimate"):
        labels_to_mesh(labels, affine, decimate=1.0)
    mesh = labels_to_mesh(labels, affine)
    with pytest.raises(InputError, match=r"unsupported mesh format '\.ply'") as err:
        write_mesh(mesh, tmp_path / "out.ply")
    assert err.value.path == str(tmp_path / "out.ply")
    with pytest.raises(InputError, match="does not exist"):
        write_mesh(mesh, tmp_path / "missing" / "out.stl")

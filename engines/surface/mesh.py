"""Surface meshes of label images with VTK, placed in world RAS millimetres, and their export.

The pipeline runs in voxel index space, where the grid is regular (discrete flying edges ->
decimation -> windowed-sinc smoothing), and only then maps the vertices through the full affine
(rotation and shear included), so a rotated or oblique volume gives a mesh that overlays its labels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
from vtkmodules.util import numpy_support
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkImageData, vtkPolyData
from vtkmodules.vtkCommonMath import vtkMatrix4x4
from vtkmodules.vtkCommonTransforms import vtkTransform
from vtkmodules.vtkFiltersCore import (
    vtkDecimatePro,
    vtkPolyDataNormals,
    vtkReverseSense,
    vtkWindowedSincPolyDataFilter,
)
from vtkmodules.vtkFiltersGeneral import vtkDiscreteFlyingEdges3D, vtkTransformFilter
from vtkmodules.vtkIOGeometry import vtkOBJWriter, vtkSTLWriter
from vtkmodules.vtkIOXML import vtkXMLPolyDataWriter

from engines.errors import InputError

# Name of the per-vertex label array in exported files.
LABEL_ARRAY = "label"


@dataclass
class Mesh:
    """A triangle mesh in world millimetres.

    Attributes
    ----------
    vertices : ndarray, shape (N, 3), float32
        World RAS+ millimetres (the frame of the Volume's affine and of napari's world here).
    faces : ndarray, shape (M, 3), int64
        Vertex indices, counter-clockwise seen from outside (normals point out of each label).
    values : ndarray, shape (N,)
        Label value of each vertex (napari's Surface `vertex_values`).
    normals : ndarray, shape (N, 3), float32, or None
        Unit outward vertex normals.
    """

    vertices: np.ndarray
    faces: np.ndarray
    values: np.ndarray
    normals: np.ndarray | None = None

    @property
    def n_triangles(self) -> int:
        return len(self.faces)


def _check_labels(labels: np.ndarray, affine: np.ndarray) -> np.ndarray:
    if labels.ndim != 3:
        raise InputError(f"labels must be 3D, got shape {tuple(labels.shape)}")
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise InputError(f"labels must have an integer dtype, got {labels.dtype}")
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise InputError(f"affine must be a finite 4x4 matrix, got {affine.shape}")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InputError("affine is singular (a zero voxel size?): cannot place the surface in space")
    return affine


def _bounding_box(mask: np.ndarray) -> tuple[slice, slice, slice]:
    """Slices of the smallest box holding every True voxel of a 3D mask (which must hold one)."""
    box = []
    for axis in range(3):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)


def _image_data(block: np.ndarray) -> vtkImageData:
    """Wrap a C-contiguous (I, J, K) array without copying: VTK's x runs along K, z along I."""
    image = vtkImageData()
    image.SetDimensions(block.shape[2], block.shape[1], block.shape[0])
    scalars = numpy_support.numpy_to_vtk(block.ravel(), deep=False)
    image.GetPointData().SetScalars(scalars)
    return image


def labels_to_mesh(
    labels: np.ndarray,
    affine: np.ndarray,
    label: int | None = None,
    *,
    smoothing_iterations: int = 15,
    pass_band: float = 0.1,
    decimate: float = 0.0,
    progress: Callable[[float], None] | None = None,
) -> Mesh:
    """Closed surface of one label, or of every non-zero label, in world millimetres.

    Parameters
    ----------
    labels : array-like of int, shape (I, J, K)
        Label image; 0 is background.
    affine : ndarray, shape (4, 4)
        Voxel index -> world RAS mm (a Volume's affine). A negative determinant (a mirrored grid)
        is handled by reversing the triangles so normals still point outward.
    label : int, optional
        Only this label; None (default) meshes every non-zero label, each as its own closed surface.
    smoothing_iterations : int
        Windowed-sinc iterations (0 = no smoothing, the voxel staircase stays).
    pass_band : float in (0, 2)
        Windowed-sinc pass band; smaller smooths more (0.01-0.1 usual).
    decimate : float in [0, 1)
        Fraction of triangles to remove. Topology is preserved so surfaces stay closed, which may stop
        the decimation short of the target on voxel staircases.
    progress : callable, optional
        Called with the fraction done (0..1) after each stage.

    Returns
    -------
    Mesh
        Vertices (N, 3) float32 world mm, faces (M, 3) int64, per-vertex label values, outward normals.
    """
    affine = _check_labels(labels, affine)
    if smoothing_iterations < 0:
        raise InputError(f"smoothing_iterations must be >= 0, got {smoothing_iterations}")
    if not 0.0 < pass_band < 2.0:
        raise InputError(f"pass_band must be in (0, 2), got {pass_band}")
    if not 0.0 <= decimate < 1.0:
        raise InputError(f"decimate must be in [0, 1), got {decimate}")
    report = progress or (lambda _fraction: None)

    labels = np.asarray(labels)
    mask = labels != 0 if label is None else labels == label
    if not mask.any():
        raise InputError("the labels are empty (every voxel is 0)" if label is None
                         else f"label {label} is not present in the labels")
    box = _bounding_box(mask)
    del mask
    # One voxel of background around the box so surfaces touching the volume's border are closed.
    block = np.ascontiguousarray(np.pad(labels[box], 1))
    if block.dtype == bool:
        block = block.view(np.uint8)
    block = block.astype(block.dtype.newbyteorder("="), copy=False)  # VTK takes native byte order only
    values = [label] if label is not None else [int(v) for v in np.unique(block) if v != 0]

    contour = vtkDiscreteFlyingEdges3D()
    image = _image_data(block)
    contour.SetInputData(image)
    for n, value in enumerate(values):
        contour.SetValue(n, value)
    contour.ComputeNormalsOff()
    contour.ComputeGradientsOff()
    contour.ComputeScalarsOn()
    contour.Update()
    report(0.3)
    surface = contour.GetOutputPort()

    # Decimate the staircase, then smooth (as 3D Slicer does): decimating a smoothed surface can
    # leave non-manifold edges on large multi-label meshes.
    if decimate > 0:
        decimator = vtkDecimatePro()
        decimator.SetInputConnection(surface)
        decimator.SetTargetReduction(decimate)
        decimator.PreserveTopologyOn()
        decimator.SplittingOff()
        decimator.BoundaryVertexDeletionOff()
        decimator.Update()
        surface = decimator.GetOutputPort()
    report(0.6)

    if smoothing_iterations > 0:
        smoother = vtkWindowedSincPolyDataFilter()
        smoother.SetInputConnection(surface)
        smoother.SetNumberOfIterations(smoothing_iterations)
        smoother.SetPassBand(pass_band)
        smoother.NormalizeCoordinatesOn()
        smoother.BoundarySmoothingOff()
        smoother.FeatureEdgeSmoothingOff()
        smoother.NonManifoldSmoothingOn()
        smoother.Update()
        surface = smoother.GetOutputPort()
    report(0.85)

    # VTK point (x, y, z) = block index (k, j, i); block index + box start - 1 = volume index.
    to_index = np.zeros((4, 4))
    to_index[[0, 1, 2], [2, 1, 0]] = 1.0
    to_index[:3, 3] = [s.start - 1 for s in box]
    to_index[3, 3] = 1.0
    matrix = affine @ to_index
    vtk_matrix = vtkMatrix4x4()
    vtk_matrix.DeepCopy(matrix.ravel())
    transform = vtkTransform()
    transform.SetMatrix(vtk_matrix)
    placer = vtkTransformFilter()
    placer.SetTransform(transform)
    placer.SetInputConnection(surface)
    placer.SetOutputPointsPrecision(1)  # vtkAlgorithm::DOUBLE_PRECISION: transform in float64
    surface = placer.GetOutputPort()
    if np.linalg.det(matrix[:3, :3]) < 0:
        # A mirroring map turns outward-wound triangles inward: reverse them.
        reverser = vtkReverseSense()
        reverser.SetInputConnection(surface)
        reverser.ReverseCellsOn()
        reverser.ReverseNormalsOff()
        surface = reverser.GetOutputPort()

    normals = vtkPolyDataNormals()
    normals.SetInputConnection(surface)
    normals.ComputePointNormalsOn()
    normals.ComputeCellNormalsOff()
    normals.SplittingOff()  # splitting would duplicate vertices along sharp edges and open the surface
    normals.ConsistencyOff()  # winding is already consistent and outward
    normals.AutoOrientNormalsOff()
    normals.Update()
    report(1.0)
    return _mesh_from_polydata(normals.GetOutput())


def _mesh_from_polydata(poly: vtkPolyData) -> Mesh:
    vertices = numpy_support.vtk_to_numpy(poly.GetPoints().GetData()).astype(np.float32)
    polys = poly.GetPolys()
    offsets = numpy_support.vtk_to_numpy(polys.GetOffsetsArray())
    if np.any(np.diff(offsets) != 3):
        raise RuntimeError("surface pipeline produced non-triangle cells")
    faces = numpy_support.vtk_to_numpy(polys.GetConnectivityArray()).astype(np.int64).reshape(-1, 3)
    values = numpy_support.vtk_to_numpy(poly.GetPointData().GetScalars()).copy()
    normals = numpy_support.vtk_to_numpy(poly.GetPointData().GetNormals()).astype(np.float32)
    return Mesh(vertices=vertices, faces=faces, values=values, normals=normals)


def mesh_to_polydata(mesh: Mesh) -> vtkPolyData:
    """A vtkPolyData of `mesh` (points, triangles, "label" point scalars, normals when present)."""
    vertices = np.ascontiguousarray(mesh.vertices, dtype=np.float32)
    faces = np.ascontiguousarray(mesh.faces, dtype=np.int64)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
        raise InputError(f"mesh needs (N, 3) vertices and (M, 3) faces, got {vertices.shape}, {faces.shape}")
    if len(faces) == 0:
        raise InputError("the mesh has no triangles")
    poly = vtkPolyData()
    points = vtkPoints()
    points.SetData(numpy_support.numpy_to_vtk(vertices, deep=True))
    poly.SetPoints(points)
    cells = vtkCellArray()
    offsets = np.arange(0, 3 * len(faces) + 1, 3, dtype=np.int64)
    cells.SetData(numpy_support.numpy_to_vtkIdTypeArray(offsets, deep=True),
                  numpy_support.numpy_to_vtkIdTypeArray(faces.ravel(), deep=True))
    poly.SetPolys(cells)
    scalars = numpy_support.numpy_to_vtk(np.ascontiguousarray(mesh.values), deep=True)
    scalars.SetName(LABEL_ARRAY)
    poly.GetPointData().SetScalars(scalars)
    if mesh.normals is not None:
        normals = numpy_support.numpy_to_vtk(np.ascontiguousarray(mesh.normals, dtype=np.float32), deep=True)
        normals.SetName("Normals")
        poly.GetPointData().SetNormals(normals)
    return poly


# extension -> writer factory; the one list of formats write_mesh accepts.
MESH_WRITERS = {
    ".stl": vtkSTLWriter,
    ".obj": vtkOBJWriter,
    ".vtp": vtkXMLPolyDataWriter,
}


def write_mesh(mesh: Mesh, path: str | PathLike) -> Path:
    """Write `mesh` to STL (binary), OBJ or VTP, chosen by the extension of `path`; return the path.

    Coordinates are written as they are: world RAS+ millimetres (3D Slicer reads STL/OBJ as LPS by
    default; choose RAS on import there).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_WRITERS:
        raise InputError(f"unsupported mesh format {suffix or '(no extension)'!r}; use "
                         + ", ".join(MESH_WRITERS), path)
    if not path.parent.is_dir():
        raise InputError("the folder to write into does not exist", path.parent)
    writer = MESH_WRITERS[suffix]()
    if suffix == ".stl":
        writer.SetFileTypeToBinary()
    writer.SetFileName(str(path))
    writer.SetInputData(mesh_to_polydata(mesh))
    if writer.Write() != 1 or writer.GetErrorCode() != 0:
        raise InputError(f"could not write the mesh (VTK error code {writer.GetErrorCode()})", path)
    return path

"""Label image -> smoothed, decimated surface mesh in world millimetres (VTK), and mesh export."""

from engines.surface.mesh import Mesh, labels_to_mesh, mesh_to_polydata, write_mesh

__all__ = ["Mesh", "labels_to_mesh", "mesh_to_polydata", "write_mesh"]

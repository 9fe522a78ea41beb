"""The spatial mesh: ranks laid out as a grid of blocks over a volume's D, H, W axes (DESIGN §7).

Global rank r = replica * (mD * mH * mW) + (d * mH + h) * mW + w, where (mD, mH, mW) is the mesh shape,
(d, h, w) the block coordinates and `replica` the index along the optional data-parallel axis. Every
replica holds a whole copy of the volume split the same way; blocks are equal, so a volume's extent along
an axis must be a multiple of the mesh's extent there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.distributed as dist

from engines.partition.layout import format_mesh

AXES = ("D", "H", "W")


class SpatialMesh:
    """Which block of the volume this rank holds, who its neighbours are, and the groups to talk to.

    Parameters
    ----------
    shape : (int, int, int)
        Blocks along D, H, W.
    data_parallel : int
        Replicas of the spatial mesh, each training on its own samples.
    rank : int, optional
        This process's global rank. Defaults to the process group's rank, or 0 when none is initialised
        (then the mesh can still do block arithmetic and model conversion, but no communication).

    Raises
    ------
    ValueError
        If the shape is not three positive integers, or the process group's size differs from
        ``prod(shape) * data_parallel``.
    """

    def __init__(self, shape: Sequence[int], *, data_parallel: int = 1, rank: int | None = None) -> None:
        shape = tuple(int(s) for s in shape)
        if len(shape) != 3 or min(shape) < 1 or int(data_parallel) < 1:
            raise ValueError(f"a mesh needs three positive block counts (D, H, W) and data_parallel >= 1; "
                             f"got shape {shape}, data_parallel {data_parallel}")
        self.shape: tuple[int, int, int] = shape  # type: ignore[assignment]
        self.data_parallel = int(data_parallel)
        self.spatial_size = math.prod(shape)
        self.world_size = self.spatial_size * self.data_parallel
        self.distributed = dist.is_available() and dist.is_initialized()
        if self.distributed:
            if dist.get_world_size() != self.world_size:
                raise ValueError(f"mesh {self} needs {self.world_size} ranks; the process group has "
                                 f"{dist.get_world_size()}")
            rank = dist.get_rank() if rank is None else rank
        self.rank = 0 if rank is None else int(rank)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is outside mesh {self} ({self.world_size} ranks)")
        self.replica, spatial_index = divmod(self.rank, self.spatial_size)
        self.coords: tuple[int, int, int] = tuple(int(c) for c in np.unravel_index(spatial_index, shape))
        self.spatial_group = None  # None = the default (world) group, used when there is one replica
        if self.distributed and self.data_parallel > 1:
            # new_group is collective over the world: every rank creates every replica's group, in order.
            for replica in range(self.data_parallel):
                group = dist.new_group(self.replica_ranks(replica))
                if replica == self.replica:
                    self.spatial_group = group

    def __deepcopy__(self, memo: dict) -> SpatialMesh:
        """The mesh itself: a copy of a partitioned model runs on the same ranks and process groups (which
        cannot be copied)."""
        return self

    def __repr__(self) -> str:
        return format_mesh(self.shape, self.data_parallel)

    @property
    def split_axes(self) -> tuple[int, ...]:
        """Spatial axes (0 = D, 1 = H, 2 = W) cut into more than one block."""
        return tuple(axis for axis, n in enumerate(self.shape) if n > 1)

    def replica_ranks(self, replica: int | None = None) -> list[int]:
        """Global ranks of one replica's spatial group (this rank's by default)."""
        replica = self.replica if replica is None else replica
        return list(range(replica * self.spatial_size, (replica + 1) * self.spatial_size))

    def rank_at(self, coords: Sequence[int], replica: int | None = None) -> int:
        """Global rank of the block at `coords` in a replica (this rank's by default)."""
        replica = self.replica if replica is None else replica
        return replica * self.spatial_size + int(np.ravel_multi_index(tuple(coords), self.shape))

    def neighbors(self, axis: int) -> tuple[int | None, int | None]:
        """Global ranks of the previous and next block along `axis`, None at the volume's border."""
        found: list[int | None] = []
        for step in (-1, 1):
            coords = list(self.coords)
            coords[axis] += step
            found.append(self.rank_at(coords) if 0 <= coords[axis] < self.shape[axis] else None)
        return found[0], found[1]

    def local_shape(self, global_shape: Sequence[int]) -> tuple[int, int, int]:
        """Extent of each block of a volume of spatial shape `global_shape` (D, H, W)."""
        _check_spatial(global_shape)
        global_shape = tuple(int(n) for n in global_shape[-3:])
        for axis, (size, parts) in enumerate(zip(global_shape, self.shape, strict=True)):
            if size % parts:
                raise ValueError(f"a volume of extent {size} along {AXES[axis]} does not split into {parts} "
                                 f"equal blocks: pad it to a multiple of {parts} (pad_to_multiple)")
        return tuple(size // parts for size, parts in zip(global_shape, self.shape, strict=True))  # type: ignore[return-value]

    def block_slices(self, global_shape: Sequence[int], coords: Sequence[int] | None = None
                     ) -> tuple[slice, slice, slice]:
        """Index of a block (this rank's by default) in a volume of spatial shape `global_shape`."""
        local = self.local_shape(global_shape)
        coords = self.coords if coords is None else coords
        return tuple(slice(c * n, (c + 1) * n) for c, n in zip(coords, local, strict=True))  # type: ignore[return-value]

    def block(self, volume: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """This rank's block of a volume every rank holds whole; spatial axes are the last three."""
        return volume[(..., *self.block_slices(volume.shape[-3:]))]

    def scatter(self, volume: torch.Tensor | None, *, src: int = 0) -> torch.Tensor:
        """Send each block of a volume held by one rank to the rank that owns it.

        Parameters
        ----------
        volume : Tensor, shape (..., D, H, W), or None
            The whole volume on the replica's rank `src` (a spatial index, 0 = the replica's first rank);
            None (ignored) elsewhere.

        Returns
        -------
        Tensor, shape (..., D / mD, H / mH, W / mW)
            This rank's block, with the volume's dtype, on the volume's device (on this rank's GPU with NCCL).
        """
        src_rank = self.replica_ranks()[src]
        header = [None]
        if self.rank == src_rank:
            if dist.get_backend(self.spatial_group) == "nccl":  # NCCL moves CUDA tensors only
                volume = volume.to(self._device("cuda"))
            header = [(tuple(volume.shape), volume.dtype, str(volume.device))]
        dist.broadcast_object_list(header, src=src_rank, group=self.spatial_group)
        shape, dtype, device = header[0]
        local = (*shape[:-3], *self.local_shape(shape))  # every rank refuses a volume that does not split
        mine = device if self.rank == src_rank else self._device(device)
        out = torch.empty(local, dtype=dtype, device=mine)
        blocks = None
        if self.rank == src_rank:
            blocks = [_bytes(volume[(..., *self.block_slices(shape, self._coords_of(r)))])
                      for r in self.replica_ranks()]
        dist.scatter(_bytes(out), blocks, src=src_rank, group=self.spatial_group)  # fills `out`
        return out

    def gather(self, block: torch.Tensor, *, dst: int = 0) -> torch.Tensor | None:
        """Assemble every rank's block into the whole volume on the replica's rank `dst` (None elsewhere).

        Parameters
        ----------
        block : Tensor, shape (..., d, h, w)
            This rank's block; all blocks have the same shape.

        Returns
        -------
        Tensor, shape (..., d * mD, h * mH, w * mW) on `dst`; None on the other ranks.
        """
        _check_spatial(block.shape)  # on every rank, before the collective
        dst_rank = self.replica_ranks()[dst]
        block = block.contiguous()
        parts = [torch.empty_like(block) for _ in range(self.spatial_size)] if self.rank == dst_rank else None
        dist.gather(_bytes(block), None if parts is None else [_bytes(part) for part in parts], dst=dst_rank,
                    group=self.spatial_group)
        if parts is None:
            return None
        shape = (*block.shape[:-3], *(n * m for n, m in zip(block.shape[-3:], self.shape, strict=True)))
        whole = block.new_empty(shape)
        for r, part in zip(self.replica_ranks(), parts, strict=True):
            whole[(..., *self.block_slices(shape, self._coords_of(r)))] = part
        return whole

    def _coords_of(self, rank: int) -> tuple[int, int, int]:
        return tuple(int(c) for c in np.unravel_index(rank % self.spatial_size, self.shape))  # type: ignore[return-value]

    @staticmethod
    def _device(src_device: str) -> torch.device:
        # NCCL ranks each own one GPU: a block lands on this rank's current GPU, not on src's.
        if src_device.startswith("cuda"):
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")


def _check_spatial(shape: Sequence[int]) -> None:
    """ValueError unless `shape` ends in three spatial axes (D, H, W)."""
    if len(shape) < 3:
        raise ValueError(f"a volume or block needs three spatial axes (..., D, H, W); this one is "
                         f"{tuple(int(n) for n in shape)}")


def _bytes(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor`'s memory as bytes (a view of it, made contiguous first): scatter and gather only move
    data, and gloo refuses some types a scan comes in (int16, uint16)."""
    return tensor.contiguous().view(torch.uint8)

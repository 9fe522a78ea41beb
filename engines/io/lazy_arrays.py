"""Array-likes read part by part: the protocol they share, and StreamedVoxels, a compressed file's voxels
decompressed as they are indexed (for one pass over a volume too large to hold: a training job's launcher).

Any compressed stream that reads forward serves: nibabel's gzip opener (NIfTI, MGZ), DeflateReader for a
NRRD's gzip encoding and MetaImage's zlib CompressedData, and bz2 (through ClosingReader) for a NRRD's bzip2.
"""

from __future__ import annotations

import gzip
import io
import math
import zlib
from collections.abc import Callable
from typing import Any, BinaryIO

import numpy as np

from engines.errors import InputError

READ_PIECE = 1 << 20  # bytes decompressed at a time
# What reading a damaged compressed stream raises: short or corrupt data, a bad checksum.
STREAM_ERRORS = (OSError, EOFError, ValueError, zlib.error)


class LazyArray:
    """What numpy and the engines ask of an array-like read part by part: `shape` and `dtype` (set by the
    subclass), `ndim`, `len`, and the whole array through `np.asarray` (self[...])."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        raise NotImplementedError

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return np.asarray(self[...], dtype=dtype or self.dtype)


class DeflateReader(io.RawIOBase):
    """Deflated data in `raw`, from where it stands, read as the bytes they decompress to: a zlib stream
    (MetaImage's CompressedData) or gzip members (a NRRD's gzip encoding). At each stream's end zlib has
    checked its checksum; bytes after the last gzip member are left alone, as gzip -d leaves them. A file
    that ends inside a stream raises EOFError. Closing it closes `raw`."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 32)  # either header, told apart by its first bytes
        self._pending = memoryview(b"")
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            if self._ended:
                return 0
            if self._zlib.eof:
                following = self._zlib.unused_data
                while len(following) < 2 and (more := self._raw.read(READ_PIECE)):  # enough to tell
                    following += more
                if not following.startswith(b"\x1f\x8b"):  # no further gzip member
                    self._ended = True
                    return 0
                self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 16)
            else:
                following = self._zlib.unconsumed_tail or self._raw.read(READ_PIECE)
                if not following:
                    raise EOFError("the file ends inside the compressed data")
            self._pending = memoryview(self._zlib.decompress(following, READ_PIECE))
        size = min(len(buffer), len(self._pending))
        memoryview(buffer).cast("B")[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def close(self) -> None:
        self._raw.close()
        super().close()


class ClosingReader(io.RawIOBase):
    """`stream` (a decompressing file object reading from `raw`, such as bz2.BZ2File) read as it is; closing
    it closes `raw` too, which such a stream leaves open."""

    def __init__(self, stream: BinaryIO, raw: BinaryIO) -> None:
        self._stream, self._raw = stream, raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._stream.readinto(buffer)

    def close(self) -> None:
        self._stream.close()
        self._raw.close()
        super().close()


class StreamedVoxels(LazyArray):
    """A compressed file's stored voxels (the first 3D volume) as an array-like decompressed as it is indexed.

    Parts asked for in the file's order (slabs along its last, slowest axis) decompress the file once in all,
    holding one part at a time; a part that starts before the end of the last one read decompresses from the
    beginning again. Damage (a truncated or corrupt stream) is found when the part holding it is read, and
    raised as InputError naming the file. Indexing takes ints and slices (the last axis's become whole planes
    read); the result is a new array in native byte order. Reading the last plane reads on to the stream's
    end (through any further volumes), where its checksum finds a changed byte anywhere in the file.

    Parameters
    ----------
    path, kind : the file and its format, for messages.
    open_stream : opens the decompressed data, from their first byte (a fresh stream each call).
    offset : where the voxels start in the decompressed data (after a NIfTI's header, a NRRD's byte skip).
    dtype : the voxels as stored, byte order included.
    shape : the stored array's shape, fastest axis first (I, J[, K, ...]); only its first 3D volume is
        read, a 2D image as (I, J, 1).
    """

    def __init__(self, path: str, kind: str, open_stream: Callable[[], BinaryIO], offset: int, dtype: Any,
                 shape: tuple[int, ...]) -> None:
        self.path, self._kind, self._open, self._offset = path, kind, open_stream, int(offset)
        self._stored = np.dtype(dtype)
        self.dtype = self._stored.newbyteorder("=")
        self.shape = (*(int(n) for n in shape[:3]), *(1,) * (3 - len(shape)))
        size = self._stored.itemsize
        self._end = self._offset + math.prod(int(n) for n in shape) * size  # of the data, all volumes
        self.strides = (size, size * self.shape[0], size * self.shape[0] * self.shape[1])  # Fortran order
        self._file: Any = None
        self._position = 0

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if not all(k is Ellipsis or isinstance(k, slice) or (isinstance(k, int | np.integer)
                                                             and not isinstance(k, bool)) for k in key):
            raise TypeError(f"StreamedVoxels takes ints, slices and one Ellipsis, not {key!r}")
        if sum(k is Ellipsis for k in key) > 1:
            raise IndexError("an index can only have a single ellipsis ('...')")
        if (at := next((i for i, k in enumerate(key) if k is Ellipsis), None)) is not None:
            key = key[:at] + (slice(None),) * (3 - len(key) + 1) + key[at + 1:]
        key = key + (slice(None),) * (3 - len(key))
        # The result's shape, and numpy's own IndexError (too many indices, an int out of range), from a
        # view that holds no memory.
        shape = np.broadcast_to(np.zeros((), self.dtype), self.shape)[key].shape
        if 0 in shape:
            return np.empty(shape, self.dtype)
        last = key[2]
        planes = range(*last.indices(self.shape[2])) if isinstance(last, slice) else range(
            range(self.shape[2])[last], range(self.shape[2])[last] + 1)
        low = min(planes)
        block = self._planes(low, max(planes) + 1)
        inner = slice(planes.start - low, None, planes.step) if isinstance(last, slice) else 0
        return block[key[0], key[1], inner]

    def _planes(self, low: int, high: int) -> np.ndarray:
        """Planes low..high-1 of the last axis, read from the stream (reopened when they lie behind it)."""
        plane = self.shape[0] * self.shape[1] * self._stored.itemsize
        start, length = self._offset + low * plane, (high - low) * plane
        buffer = bytearray(length)
        got = 0
        try:
            if self._file is None or start < self._position:
                if self._file is not None:
                    self._file.close()
                self._file, self._position = self._open(), 0
            view = memoryview(buffer)
            # Up to the part (decompressed and dropped), then into its buffer; in pieces: gzip builds each
            # read as a new bytes object before copying it.
            while self._position < start and (part := self._file.readinto(
                    view[:min(READ_PIECE, start - self._position, length)])):
                self._position += part
            if self._position == start:
                while got < length and (part := self._file.readinto(view[got:got + READ_PIECE])):
                    got += part
                self._position += got
            view.release()
            if got == length and high == self.shape[2]:
                self._read_to_the_end()
        except InputError:  # a ValueError, but already the message
            raise
        except STREAM_ERRORS as exc:
            raise InputError(f"the compressed {self._kind} data is truncated or corrupt ({exc})", self.path
                             ) from exc
        if got < length:
            whole = max(self._position - self._offset, 0) // plane
            raise InputError(f"the compressed {self._kind} data is truncated: it ends after {whole} of its "
                             f"{self.shape[2]} slices", self.path)
        values = np.frombuffer(buffer, self._stored)
        if not self._stored.isnative:
            values = values.byteswap(inplace=True).view(self.dtype)  # in the buffer: no copy
        return values.reshape((*self.shape[:2], high - low), order="F")

    def _read_to_the_end(self) -> None:
        """Read past the data (further volumes, an MGH's few tags) to the stream's end, where gzip or zlib
        checks its checksum; bytes after the last gzip member are no gzip data and are left alone, as
        nibabel and gzip -d leave them."""
        position = self._position
        try:
            while part := self._file.read(1 << 16):
                position += len(part)
        except gzip.BadGzipFile as exc:
            if not str(exc).startswith("Not a gzipped file"):  # a CRC or length error: damage
                raise
        self._file.close()  # the pass is over: the next read starts again
        self._file = None
        if position < self._end:
            volume = self.shape[0] * self.shape[1] * self.shape[2] * self._stored.itemsize
            raise InputError(f"the compressed {self._kind} data is truncated: it ends in volume "
                             f"{(position - self._offset) // volume + 1} of "
                             f"{(self._end - self._offset) // volume}", self.path)

"""Rows of a .npy file read on demand, for the stores and caches that grow with the corpus.

A memory map would do the same reads, but every page it touches counts as the process's resident memory
until the kernel takes it back, so a pass over a 20 GB cache would look like (and be accounted as, e.g. by
a cluster's memory limit) 20 GB of RSS. Reading with `os.pread` goes through the page cache instead: the
process holds only the rows it asked for.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np


class NpyRows:
    """`rows[a:b]` of a C-ordered .npy array (1-D or 2-D), read from disk when asked for."""

    def __init__(self, path: Path | str):
        path = Path(path)
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            self.shape, fortran_order, self.dtype = read_header(f)
            self._data_offset = f.tell()
        if fortran_order:
            raise ValueError(f"{path}: Fortran-ordered arrays are not supported")
        self._row_items = math.prod(self.shape[1:])
        self._row_bytes = self._row_items * self.dtype.itemsize
        self.path = path
        self._fd, self._pid = None, None

    def _file(self) -> int:
        if self._pid != os.getpid():  # a forked worker opens its own descriptor
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return self._fd

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        return len(self) * self._row_bytes

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, step = rows.indices(len(self))
        if step != 1:
            raise ValueError("only contiguous row ranges can be read")
        n = max(0, stop - start)
        data = os.pread(self._file(), n * self._row_bytes, self._data_offset + start * self._row_bytes)
        return np.frombuffer(data, dtype=self.dtype).reshape((n, *self.shape[1:]))

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None, "_pid": None}


def concatenate_npy(parts: list[Path], out: Path, chunk_rows: int = 65536) -> None:
    """Write the rows of the .npy files `parts`, in order, to the .npy file `out`, a chunk at a time (memory stays
    flat with their size); the parts are removed once copied."""
    from npy_append_array import NpyAppendArray

    with NpyAppendArray(str(out), delete_if_exists=True) as writer:
        for part in parts:
            rows = NpyRows(part)
            writer.append(rows[0:0])  # the header, even when every part is empty
            for start in range(0, len(rows), chunk_rows):
                writer.append(np.ascontiguousarray(rows[start: start + chunk_rows]))
    for part in parts:
        Path(part).unlink()

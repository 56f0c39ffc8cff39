"""Data lines of a VCF as byte spans of one decompressed block, cut without copying it.

A block of text as htslib decompresses it (4 MB at a time) holds ~20,000 records; cutting it
into an Arrow string array would copy it two or three times (split, newline removal, blank
line filter). :class:`Lines` instead keeps the block and each line's (start, end) in it. The
compiled typing (:mod:`pipelines.genomics.fastrows`) reads the spans directly; the Arrow path
gets a string array (:meth:`Lines.arrow`) only when it needs one.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

NEWLINE, CR = 10, 13
# Blocks at least this big (a large file's 4 MB reads) are cut by compiled code
# (fastrows.line_spans) once the typing has loaded it; others with numpy, so cutting lines
# never makes a worker load numba (~1.2 s) by itself: a file of long sites-only lines can be
# large and still be typed by the Arrow path (batches under rows.COMPILED_MIN_ROWS).
COMPILED_MIN_BYTES = 1 << 20
_FASTROWS = "pipelines.genomics.fastrows"


def _utf8(block) -> bool:
    try:
        bytes(block).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@dataclass(frozen=True)
class Lines:
    """Lines ``data[starts[i]:ends[i]]`` of one UTF-8 buffer (no newlines in them)."""

    data: np.ndarray    # uint8
    starts: np.ndarray  # int64
    ends: np.ndarray    # int64

    @classmethod
    def of_arrow(cls, arr: pa.Array) -> Lines:
        """The lines of a string array without nulls, sharing its buffers."""
        arr = arr.cast(pa.large_string())
        _, offs_buf, data_buf = arr.buffers()
        offsets = np.frombuffer(offs_buf, np.int64)[arr.offset:arr.offset + len(arr) + 1]
        data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.zeros(0,
                                                                                    np.uint8)
        return cls(data, offsets[:-1], offsets[1:])

    @classmethod
    def of_block(cls, block) -> Lines | None:
        """The lines of a block of complete lines (bytes or a memoryview, without the last
        newline); None when it is not valid UTF-8 or has CRLF line ends (the careful path in
        :mod:`pipelines.genomics.reader` handles those)."""
        data = np.frombuffer(block, np.uint8)
        if len(data) >= COMPILED_MIN_BYTES and _FASTROWS in sys.modules:
            starts, ends, high, cr = sys.modules[_FASTROWS].line_spans(data)
            return None if cr or (high and not _utf8(block)) else cls(data, starts, ends)
        if len(data) and data.max() >= 0x80 and not _utf8(block):  # not ASCII: check UTF-8
            return None
        nl = np.flatnonzero(data == NEWLINE)
        starts = np.empty(len(nl) + 1, np.int64)
        starts[0] = 0
        starts[1:] = nl + 1
        ends = np.empty(len(nl) + 1, np.int64)
        ends[:-1] = nl
        ends[-1] = len(data)
        if len(data) and ((data[np.maximum(ends - 1, 0)] == CR) & (ends > starts)).any():
            return None
        return cls(data, starts, ends)

    def __len__(self) -> int:
        return len(self.starts)

    def slice(self, offset: int, length: int | None = None) -> Lines:
        stop = len(self) if length is None else offset + length
        return Lines(self.data, self.starts[offset:stop], self.ends[offset:stop])

    def select(self, mask: np.ndarray) -> Lines:
        return Lines(self.data, self.starts[mask], self.ends[mask])

    def starts_with(self, prefix: str) -> np.ndarray:
        """Which lines start with ``prefix``."""
        p = np.frombuffer(prefix.encode(), np.uint8)
        ok = self.ends - self.starts >= len(p)
        if not len(self.data):
            return ok & (len(p) == 0)
        for j, c in enumerate(p):
            ok &= self.data[np.minimum(self.starts + j, len(self.data) - 1)] == c
        return ok

    def text(self, i: int) -> str:
        return bytes(self.data[self.starts[i]:self.ends[i]]).decode("utf-8", "replace")

    def arrow(self) -> pa.Array:
        """The lines as a large string array (a copy)."""
        lengths = self.ends - self.starts
        offsets = np.zeros(len(self) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        within = np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1], lengths)
        out = self.data[np.repeat(self.starts, lengths) + within]
        return pa.LargeStringArray.from_buffers(len(self), pa.py_buffer(offsets),
                                                pa.py_buffer(out))

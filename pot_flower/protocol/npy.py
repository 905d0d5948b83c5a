"""Flower's ``.npy`` array bytes, decoded without parsing the same header twice.

Flower ships every array as an ``.npy`` blob and decodes it with ``np.load``, which
parses the header (a Python literal) with ``ast.literal_eval`` each time: about
85 microseconds an array, 16 arrays a miner a round in ``pot_mod`` and 8 a reply in
the strategy, more than the hashing and signing. A round's blobs share a handful
of headers (one per layer), so each distinct header is parsed once, by numpy's own
reader, and remembered; the data is then copied out as ``np.load`` would.
"""

from __future__ import annotations

import io
import math
import threading
from collections import OrderedDict

import numpy as np
from numpy.typing import NDArray

_MAGIC = b"\x93NUMPY\x01\x00"  # version 1.0: what np.save writes for small headers
_PREFIX = len(_MAGIC) + 2  # magic, version, then the header's length (uint16 LE)
_LONGEST_HEADER = 4096
_REMEMBERED = 256

Header = tuple[tuple[int, ...], np.dtype[np.generic]]

_headers: OrderedDict[bytes, Header | None] = OrderedDict()
_lock = threading.Lock()


def load(data: bytes) -> NDArray[np.generic] | None:
    """The array in ``data`` (a fresh, writable copy), or ``None`` where unsure.

    ``None`` for anything but a version 1.0, C-order blob of a plain dtype whose
    size is exactly its header's: the caller falls back to ``np.load``, which
    decides (and raises) as Flower would.
    """
    if not data.startswith(_MAGIC) or len(data) < _PREFIX:
        return None
    length = int.from_bytes(data[len(_MAGIC) : _PREFIX], "little")
    if length > _LONGEST_HEADER:
        return None
    start = _PREFIX + length
    header = _header(data[:start])
    if header is None:
        return None
    shape, dtype = header
    count = math.prod(shape)
    if count == 0 or dtype.itemsize == 0 or len(data) != start + count * dtype.itemsize:
        return None
    return (
        np.frombuffer(data, dtype=dtype, count=count, offset=start)
        .reshape(shape)
        .copy()
    )


def _header(prefix: bytes) -> Header | None:
    """The shape and dtype of a C-order, non-object header (``None`` otherwise)."""
    with _lock:
        if prefix in _headers:
            _headers.move_to_end(prefix)
            return _headers[prefix]
    header: Header | None = None
    fp = io.BytesIO(prefix)
    fp.seek(len(_MAGIC))
    try:
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(fp)
    except (ValueError, TypeError):
        pass
    else:
        if not fortran_order and not dtype.hasobject and fp.tell() == len(prefix):
            header = (tuple(shape), dtype)
    with _lock:
        _headers[prefix] = header
        while len(_headers) > _REMEMBERED:
            _headers.popitem(last=False)
    return header

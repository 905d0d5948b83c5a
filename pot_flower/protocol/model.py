"""Canonical bytes and digests of named parameter arrays (a model or a returned reply).

A model is an ordered mapping ``name -> ndarray``; its canonical form is the encoding
of ``[[name, dtype, shape, data], ...]`` in the model's own key order, with explicit
little-endian dtypes and C-ordered data. The digest is SHA-256 over those bytes, so
miners and validators name the same model by the same 32 bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from pot_flower.encoding import DecodeError, decode, encode

Arrays = dict[str, NDArray[np.generic]]

ALLOWED_KINDS = frozenset("fiu")  # floats, signed and unsigned integers
MAX_DIMS = 16


class ModelFormatError(ValueError):
    """Bytes that are not a canonical model encoding."""


def canonical(array: NDArray[np.generic]) -> NDArray[np.generic]:
    """``array`` as a C-contiguous little-endian array (a view when it already is)."""
    dtype = (
        array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    )
    return np.asarray(array, dtype=dtype, order="C")  # keeps 0-d arrays 0-d


def dtype_name(dtype: np.dtype[np.generic]) -> str:
    """Explicit little-endian type string, e.g. ``'<f4'`` (``'|u1'`` for bytes)."""
    return dtype.str


def _buffer(array: NDArray[np.generic]) -> memoryview:
    """The raw bytes of a C-contiguous array, without copying."""
    return array.reshape(-1).view(np.uint8).data


def encode_arrays(arrays: Mapping[str, NDArray[np.generic]]) -> bytes:
    """The canonical bytes of ``arrays`` (order preserved)."""
    items = []
    for name, array in arrays.items():
        a = canonical(array)
        items.append([name, dtype_name(a.dtype), list(a.shape), _buffer(a)])
    return encode(items)


def decode_arrays(data: bytes) -> Arrays:
    """Inverse of :func:`encode_arrays`; raises :class:`ModelFormatError`."""
    try:
        items = decode(data)
    except DecodeError as exc:
        raise ModelFormatError(f"not canonical: {exc}") from exc
    if not isinstance(items, list):
        raise ModelFormatError("expected a list of arrays")
    out: Arrays = {}
    for item in items:
        if not (isinstance(item, list) and len(item) == 4):
            raise ModelFormatError("array entry must be [name, dtype, shape, data]")
        name, dtype_str, shape, raw = item
        if not (
            isinstance(name, str)
            and isinstance(dtype_str, str)
            and isinstance(shape, list)
            and isinstance(raw, bytes)
        ):
            raise ModelFormatError("array entry must be [name, dtype, shape, data]")
        if name in out:
            raise ModelFormatError(f"duplicate array name {name!r}")
        try:
            dtype = np.dtype(dtype_str)
        except TypeError as exc:
            raise ModelFormatError(f"{name}: unknown dtype {dtype_str!r}") from exc
        if dtype.kind not in ALLOWED_KINDS or dtype.str != dtype_str:
            raise ModelFormatError(f"{name}: unsupported dtype {dtype_str!r}")
        if len(shape) > MAX_DIMS or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise ModelFormatError(f"{name}: bad shape {shape!r}")
        dims = [d for d in shape if isinstance(d, int)]
        count = 1
        for d in dims:
            count *= d
        if count * dtype.itemsize != len(raw):
            raise ModelFormatError(f"{name}: {len(raw)} bytes do not fit shape {shape}")
        out[name] = np.frombuffer(raw, dtype=dtype).reshape(dims)
    return out


def digest_bytes(data: bytes) -> bytes:
    """SHA-256 of canonical model bytes."""
    return hashlib.sha256(data).digest()


def model_digest(arrays: Mapping[str, NDArray[np.generic]]) -> bytes:
    """SHA-256 of :func:`encode_arrays`."""
    return digest_bytes(encode_arrays(arrays))

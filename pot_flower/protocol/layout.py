"""A model's layout, precomputed once per chain state for the hot path.

Every validator checks every submission of a round against the same model, so the
expected canonical bytes around each array, the commitment headers and the base
values as one float64 vector are computed once here. An honest payload is then
parsed by comparing headers at known offsets (no generic decoding) and quantized in
one vectorized pass over all floating-point parameters.

The *flat order* used for norms, scores and aggregation is: every floating-point
array in model order, then every integer array in model order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from pot_flower.encoding import encode
from pot_flower.protocol.envelope import COMMITMENT_DOMAIN
from pot_flower.protocol.fixedpoint import (
    SCALE,
    FloatArray,
    IntArray,
    quantize_difference,
)
from pot_flower.protocol.model import Arrays


@dataclass(frozen=True)
class Slot:
    """One array: where its data sits in a payload and in the flat vector."""

    name: str
    dtype: np.dtype[np.generic]
    shape: tuple[int, ...]
    payload_offset: int  # first data byte in a canonical payload
    flat_start: int
    flat_stop: int
    commit_header: bytes


class Layout:
    """The layout of ``model`` (see the module docstring)."""

    def __init__(self, model: Arrays) -> None:
        self.model = model
        floats = [n for n, a in model.items() if a.dtype.kind == "f"]
        ints = [n for n, a in model.items() if a.dtype.kind != "f"]
        flat_start: dict[str, int] = {}
        position = 0
        for name in floats + ints:
            flat_start[name] = position
            position += model[name].size
        self.size = position
        self.float_size = sum(model[n].size for n in floats)
        self.int_names = ints
        chunks = [b"l"]
        offset = 1
        slots = []
        for name, array in model.items():
            header = (
                b"l"
                + encode(name)
                + encode(array.dtype.str)
                + encode(list(array.shape))
                + b"%d:" % array.nbytes
            )
            chunks.append(header)
            offset += len(header)
            slots.append(
                Slot(
                    name,
                    array.dtype,
                    array.shape,
                    offset,
                    flat_start[name],
                    flat_start[name] + array.size,
                    encode([name, list(array.shape), array.size * 4]),
                )
            )
            offset += array.nbytes + 1  # data, then the entry's closing "e"
        self.slots = slots
        self.payload_size = offset + 1
        self._headers = chunks
        self.base_floats: FloatArray = (
            np.concatenate([model[n].ravel() for n in floats], dtype=np.float64)
            if floats
            else np.zeros(0)
        )

    def parse(self, payload: bytes) -> list[NDArray[np.generic]] | None:
        """The arrays of a payload in exactly this layout (views), else None."""
        if len(payload) != self.payload_size or payload[0:1] != b"l":
            return None
        view = memoryview(payload)
        arrays: list[NDArray[np.generic]] = []
        for slot, header in zip(self.slots, self._headers[1:], strict=True):
            start = slot.payload_offset - len(header)
            if view[start : slot.payload_offset] != header:
                return None
            stop = slot.payload_offset + slot.dtype.itemsize * (
                slot.flat_stop - slot.flat_start
            )
            if payload[stop : stop + 1] != b"e":
                return None
            data = view[slot.payload_offset : stop]
            arrays.append(np.frombuffer(data, dtype=slot.dtype).reshape(slot.shape))
        if payload[-1:] != b"e":
            return None
        return arrays

    def quantize(
        self, arrays: list[NDArray[np.generic]], limit: int
    ) -> tuple[str, FloatArray | None]:
        """``("ok", flat)``, ``("non-finite", None)`` or ``("norm", None)``.

        ``flat`` holds the fixed-point update in flat order as exact float64
        integers; an element past ``limit`` units already exceeds the norm bound.
        """
        by_name = {s.name: a for s, a in zip(self.slots, arrays, strict=True)}
        flat = np.empty(self.size, dtype=np.float64)
        floats = flat[: self.float_size]
        if self.float_size:
            np.concatenate(
                [by_name[s.name].ravel() for s in self.slots if s.dtype.kind == "f"],
                out=floats,
            )
            floats -= self.base_floats
            floats *= SCALE
            high, low = float(floats.max()), float(floats.min())
            if not (np.isfinite(high) and np.isfinite(low)):
                return "non-finite", None
            if max(high, -low) > limit:
                return "norm", None
            np.rint(floats, out=floats)
        for slot in self.slots:
            if slot.dtype.kind != "f":
                base = self.model[slot.name]
                q = quantize_difference(by_name[slot.name], base, limit)
                if q is None:
                    return "norm", None
                flat[slot.flat_start : slot.flat_stop] = q.ravel()
        return "ok", flat

    def commitment(self, units32: NDArray[np.int32]) -> bytes:
        """:func:`~pot_flower.protocol.envelope.update_commitment`, from flat units."""
        h = hashlib.sha256(COMMITMENT_DOMAIN)
        data = units32.view(np.uint8)
        for slot in self.slots:
            h.update(slot.commit_header)
            h.update(data[4 * slot.flat_start : 4 * slot.flat_stop].data)
        return h.digest()

    def split(self, flat: IntArray) -> dict[str, IntArray]:
        """Per-array views of a flat vector, in model order."""
        return {
            s.name: flat[s.flat_start : s.flat_stop].reshape(s.shape)
            for s in self.slots
        }

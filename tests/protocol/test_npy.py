"""Flower's .npy arrays decode exactly as np.load decodes them, or fall back to it."""

from __future__ import annotations

import io

import numpy as np
from flwr.app import Array, ArrayRecord
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pot_flower.protocol import npy
from pot_flower.protocol.records import arrays_of

DTYPES = st.sampled_from(
    ["<f4", "<f8", ">f4", "<i8", "<i4", "|u1", "<f2", "|b1", ">i2"]
)


def blob(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    return out.getvalue()


@given(
    DTYPES.flatmap(lambda d: hnp.arrays(d, hnp.array_shapes(min_dims=0, max_dims=4)))
)
def test_a_plain_array_decodes_as_np_load_decodes_it(array: np.ndarray) -> None:
    data = blob(array)
    want = np.load(io.BytesIO(data), allow_pickle=False)
    for _ in range(2):  # the header parsed, then remembered
        got = npy.load(data)
        if got is None:  # only empty arrays take np.load's path
            assert array.size == 0
            continue
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes()
        assert got.flags.writeable and got.flags.c_contiguous


def test_what_it_is_unsure_of_goes_back_to_np_load() -> None:
    good = blob(np.arange(6, dtype="<f4").reshape(2, 3))
    fortran = blob(np.asfortranarray(np.arange(6, dtype="<f4").reshape(2, 3)))
    assert npy.load(good) is not None
    assert npy.load(good[:-1]) is None  # short
    assert npy.load(good + b"\0") is None  # trailing bytes
    assert npy.load(fortran) is None
    assert npy.load(b"\x93NUMPY\x02\x00" + good[8:]) is None  # another version
    assert npy.load(good[:8] + b"\xff\xff" + good[10:]) is None  # header too long
    assert npy.load(b"not an npy blob") is None
    broken = good.replace(b"'descr'", b"'descX'")
    assert npy.load(broken) is None
    text = blob(np.zeros(3, dtype="S1"))
    empty_items = text.replace(b"'|S1'", b"'|S0'")[:-3]  # three items of 0 bytes
    assert npy.load(empty_items) is None


@given(st.binary(max_size=300))
def test_any_bytes_give_an_array_or_none_never_an_error(data: bytes) -> None:
    out = npy.load(b"\x93NUMPY\x01\x00" + data)
    assert out is None or isinstance(out, np.ndarray)


def test_the_headers_it_remembers_are_bounded() -> None:
    for n in range(1, 600):
        assert npy.load(blob(np.zeros(n, dtype="<f4"))) is not None
    assert len(npy._headers) <= npy._REMEMBERED


def test_flower_records_decode_through_it_exactly() -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "w": rng.standard_normal((3, 4)).astype(np.float32),
        "b": rng.standard_normal(4),
        "n": np.array(7, dtype=np.int64),
        "e": np.zeros((0, 2), dtype=np.float32),
    }
    record = ArrayRecord({k: Array(v) for k, v in arrays.items()})
    decoded = arrays_of(record)
    assert list(decoded) == list(arrays)
    for name, array in arrays.items():
        assert decoded[name].dtype == array.dtype and decoded[name].shape == array.shape
        assert np.array_equal(decoded[name], array)

"""Canonical model bytes: layouts survive exactly, foreign bytes are refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pot_support import chain, model

from pot_flower.protocol.model import (
    ModelFormatError,
    decode_arrays,
    encode_arrays,
    model_digest,
)

dtypes = st.sampled_from(["<f4", "<f8", "<f2", "<i8", "<i4", "|u1", ">f4", ">i8"])


@given(
    st.lists(
        dtypes.flatmap(
            lambda d: hnp.arrays(
                np.dtype(d), hnp.array_shapes(min_dims=0, max_dims=3, min_side=0)
            )
        ),
        min_size=1,
        max_size=4,
    )
)
def test_round_trip_keeps_names_order_shapes_and_values(
    arrays: list[np.ndarray],
) -> None:
    named = {f"layer{i}": a for i, a in enumerate(arrays)}
    data = encode_arrays(named)
    back = decode_arrays(data)
    assert list(back) == list(named)
    for name, a in named.items():
        assert back[name].shape == a.shape  # 0-d stays 0-d (BatchNorm counters)
        assert back[name].dtype == a.dtype.newbyteorder("<") or a.dtype.kind == "u"
        assert np.array_equal(back[name], a, equal_nan=a.dtype.kind == "f")
    assert encode_arrays(back) == data


def test_genesis_keeps_the_model_layout() -> None:
    state = chain()
    assert state.model["bn.num_batches_tracked"].shape == ()
    assert state.model_digest == model_digest(model())


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"i3e",  # not a list
        b"llu1:au3:<f4li2eeu8:" + b"\x00" * 8 + b"ee",  # data as text, not bytes
        b"llu1:au3:<f4li3ee8:" + b"\x00" * 8 + b"ee",  # shape says 3 floats, 2 given
        b"llu1:au3:<f4li2ee8:"
        + b"\x00" * 8
        + b"lu1:au3:<f4li2ee8:"
        + b"\x00" * 8
        + b"ee",
        b"llu1:au3:|O8le0:ee",  # object dtype
        # the same name twice (last entry above)
        b"llu1:au3:<f4li-1ee0:ee",  # negative dimension
    ],
)
def test_bad_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(ModelFormatError):
        decode_arrays(data)


def test_well_formed_bytes_decode() -> None:
    data = b"llu1:au3:<f4li2ee8:" + b"\x00" * 8 + b"ee"
    assert decode_arrays(data)["a"].shape == (2,)

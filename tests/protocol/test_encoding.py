"""The canonical encoding: one byte string per value, anything else rejected."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pot_flower.encoding import DecodeError, decode, encode

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.binary(max_size=64)
    | st.text(max_size=32)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)


@given(values)
def test_round_trip_is_identity(value: object) -> None:
    assert decode(encode(value)) == value  # type: ignore[arg-type]


@given(values)
def test_encoding_is_canonical(value: object) -> None:
    data = encode(value)  # type: ignore[arg-type]
    assert encode(decode(data)) == data


def test_dict_key_order_does_not_change_the_bytes() -> None:
    assert encode({"b": 1, "a": 2}) == encode({"a": 2, "b": 1}) == b"du1:ai2eu1:bi1ee"


def test_tuples_and_lists_encode_alike() -> None:
    assert encode((1, b"x")) == encode([1, b"x"])


@pytest.mark.parametrize(
    "data",
    [
        b"i01e",  # leading zero
        b"i-0e",  # negative zero
        b"ie",
        b"i12",  # unterminated
        b"5:abc",  # truncated
        b"d u1:bi1eu1:ai2ee".replace(b" ", b""),  # unsorted keys
        b"du1:ai1eu1:ai2ee",  # duplicate key
        b"d1:ai1ee",  # bytes key
        b"l",  # unterminated list
        b"i1ei2e",  # trailing data
        b"x",
        b"",
        b"u2:\xff\xfe",  # invalid UTF-8
        b"l" * 100 + b"e" * 100,  # too deep
    ],
)
def test_non_canonical_input_is_rejected(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(data)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    try:
        value = decode(data)
    except DecodeError:
        return
    assert encode(value) == data


def test_unencodable_types_are_refused() -> None:
    with pytest.raises(TypeError):
        encode(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        encode({1: 2})  # type: ignore[dict-item]

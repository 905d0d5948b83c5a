"""Canonical binary encoding: one byte string per value, so hashes and signatures agree.

A strict, self-describing variant of bencode. Every value has exactly one encoding and
the decoder rejects anything else (leading zeros, unsorted or duplicate keys, trailing
bytes), so ``encode(decode(b)) == b`` for every ``b`` that decodes. Honest validators
hash and sign these bytes, which is what makes their results bit-identical.

=============  ===========================================
value          encoding
=============  ===========================================
``None``       ``n``
``False``      ``f``
``True``       ``t``
int            ``i<decimal>e``
bytes          ``<len>:<raw>``
str            ``u<len>:<utf-8>``
list / tuple   ``l<items>e``
dict[str, …]   ``d<key><value>…e`` (keys sorted by UTF-8)
=============  ===========================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Union

Value = Union[None, bool, int, bytes, str, Sequence["Value"], Mapping[str, "Value"]]
Decoded = Union[None, bool, int, bytes, str, list["Decoded"], dict[str, "Decoded"]]

MAX_DEPTH = 32
_DIGITS = frozenset(b"0123456789")
_N, _T, _F, _I, _U, _L, _D, _E = b"ntfiulde"
_COLON = ord(":")


class DecodeError(ValueError):
    """Raised when bytes are not the canonical encoding of a value."""


def encode(value: Value) -> bytes:
    """Return the canonical encoding of ``value``."""
    out: list[bytes] = []
    _encode(value, out, 0)
    return b"".join(out)


def _encode(value: Value, out: list[bytes], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply")
    if value is None:
        out.append(b"n")
    elif value is True:
        out.append(b"t")
    elif value is False:
        out.append(b"f")
    elif isinstance(value, int):
        out.append(b"i%de" % value)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        out.append(b"%d:" % len(raw))
        out.append(raw)
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        out.append(b"u%d:" % len(raw))
        out.append(raw)
    elif isinstance(value, Mapping):
        keys = sorted(value, key=_key_bytes)
        out.append(b"d")
        for key in keys:
            _encode(key, out, depth + 1)
            _encode(value[key], out, depth + 1)
        out.append(b"e")
    elif isinstance(value, (list, tuple)):
        out.append(b"l")
        for item in value:
            _encode(item, out, depth + 1)
        out.append(b"e")
    else:
        raise TypeError(f"cannot encode {type(value).__name__}")


def _key_bytes(key: object) -> bytes:
    if not isinstance(key, str):
        raise TypeError("dict keys must be str")
    return key.encode("utf-8")


def decode(data: bytes) -> Decoded:
    """Decode canonical bytes; raise :class:`DecodeError` on anything non-canonical."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError("input is not bytes")
    buf = bytes(data)
    value, end = _decode(buf, 0, 0)
    if end != len(buf):
        raise DecodeError(f"{len(buf) - end} trailing bytes")
    return value


def signature_pairs(value: Decoded) -> list[tuple[int, bytes]] | None:
    """``[[index, signature], ...]`` as pairs, or None if it has another shape."""
    if not isinstance(value, list):
        return None
    pairs = []
    for item in value:
        if not (
            isinstance(item, list)
            and len(item) == 2
            and type(item[0]) is int
            and isinstance(item[1], bytes)
        ):
            return None
        pairs.append((item[0], item[1]))
    return pairs


def _read_int(buf: bytes, start: int, stop_byte: int) -> tuple[int, int]:
    stop = buf.find(bytes((stop_byte,)), start)
    if stop < 0:
        raise DecodeError("unterminated integer")
    digits = buf[start:stop]
    body = digits[1:] if digits[:1] == b"-" else digits
    if not body.isdigit():  # ASCII digits only, and at least one
        raise DecodeError("malformed integer")
    if (body[0:1] == b"0" and len(body) > 1) or digits == b"-0":
        raise DecodeError("non-canonical integer")
    if len(body) > 4096:
        raise DecodeError("integer too long")
    return int(digits), stop + 1


def _read_raw(buf: bytes, pos: int) -> tuple[bytes, int]:
    length, start = _read_int(buf, pos, _COLON)
    if length < 0:
        raise DecodeError("negative length")
    end = start + length
    if end > len(buf):
        raise DecodeError("truncated byte string")
    return buf[start:end], end


def _decode(buf: bytes, pos: int, depth: int) -> tuple[Decoded, int]:
    if depth > MAX_DEPTH:
        raise DecodeError("nested too deeply")
    if pos >= len(buf):
        raise DecodeError("truncated input")
    head = buf[pos]
    if head in _DIGITS:
        return _read_raw(buf, pos)
    if head == _I:
        return _read_int(buf, pos + 1, _E)
    if head == _L:
        items: list[Decoded] = []
        pos += 1
        while pos < len(buf) and buf[pos] != _E:
            item, pos = _decode(buf, pos, depth + 1)
            items.append(item)
        if pos >= len(buf):
            raise DecodeError("unterminated list")
        return items, pos + 1
    if head == _N:
        return None, pos + 1
    if head == _T:
        return True, pos + 1
    if head == _F:
        return False, pos + 1
    if head == _U:
        raw, end = _read_raw(buf, pos + 1)
        try:
            return raw.decode("utf-8"), end
        except UnicodeDecodeError as exc:
            raise DecodeError("invalid UTF-8") from exc
    if head == _D:
        result: dict[str, Decoded] = {}
        previous: bytes | None = None
        pos += 1
        while pos < len(buf) and buf[pos] != _E:
            if buf[pos] != _U:
                raise DecodeError("dict key is not a string")
            raw, pos = _read_raw(buf, pos + 1)
            if previous is not None and raw <= previous:
                raise DecodeError("dict keys not strictly sorted")
            previous = raw
            try:
                key = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DecodeError("invalid UTF-8 key") from exc
            result[key], pos = _decode(buf, pos, depth + 1)
        if pos >= len(buf):
            raise DecodeError("unterminated dict")
        return result, pos + 1
    raise DecodeError(f"unknown type byte {head!r}")

"""Pedersen vector commitments: two backends, one set of bytes; openings checked."""

from __future__ import annotations

import secrets
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("py_ecc")
pytest.importorskip("py_arkworks_bls12381")

from pot_flower.zk.pedersen import (
    IDENTITY,
    ORDER,
    CommitmentError,
    FastBackend,
    GeneratorCache,
    reference_backend,
    verify_openings,
    weighted_sum,
)


@pytest.fixture(scope="module")
def fast(tmp_path_factory: pytest.TempPathFactory) -> FastBackend:
    return FastBackend(GeneratorCache(tmp_path_factory.mktemp("g1")))


vectors = st.lists(st.integers(-(2**40), 2**40), min_size=0, max_size=12)


@settings(max_examples=25, deadline=None)
@given(values=vectors, blinding=st.integers(0, ORDER - 1))
def test_fast_and_reference_commit_to_the_same_bytes(
    fast: FastBackend, values: list[int], blinding: int
) -> None:
    v = np.array(values, dtype=np.int64)
    assert fast.commit(v, blinding) == reference_backend().commit(v, blinding)


def test_generators_are_hashed_to_the_curve_identically(fast: FastBackend) -> None:
    ref = reference_backend()
    for i in (0, 1, 7, 63):
        assert fast.generator(i) == ref.generator(i)
    assert fast.blinding_generator() == ref.blinding_generator()
    assert len({fast.generator(i) for i in range(16)}) == 16


@settings(max_examples=10, deadline=None)
@given(
    points=st.lists(st.integers(-(2**20), 2**20), min_size=3, max_size=3),
    weights=st.lists(st.integers(-(2**70), 2**70), min_size=3, max_size=3),
)
def test_fast_and_reference_combine_identically(
    fast: FastBackend, points: list[int], weights: list[int]
) -> None:
    commitments = [fast.commit(np.array([p, -p]), 5) for p in points]
    ref = reference_backend()
    assert fast.combine(commitments, weights) == ref.combine(commitments, weights)


def test_commitments_add_up(fast: FastBackend) -> None:
    rng = np.random.default_rng(3)
    a, b = rng.integers(-(2**31), 2**31, (2, 300))
    ra, rb = secrets.randbelow(ORDER), secrets.randbelow(ORDER)
    summed = fast.combine([fast.commit(a, ra), fast.commit(b, rb)], [3, 5])
    assert summed == fast.commit(3 * a + 5 * b, (3 * ra + 5 * rb) % ORDER)


def test_the_blinding_hides_and_binds(fast: FastBackend) -> None:
    v = np.arange(-5, 5)
    assert fast.commit(v, 1) != fast.commit(v, 2)
    assert fast.commit(v, 1) != fast.commit(v + np.eye(10, dtype=np.int64)[3], 1)
    assert fast.commit(np.zeros(4, dtype=np.int64), 0) == IDENTITY


@pytest.mark.parametrize(
    "bad",
    [np.zeros((2, 2), dtype=np.int64), np.array([0.5]), np.array([2**62])],
    ids=["2-d", "float", "too large"],
)
def test_malformed_vectors_are_refused(fast: FastBackend, bad: np.ndarray) -> None:
    with pytest.raises(CommitmentError):
        fast.commit(bad, 1)


@pytest.mark.parametrize("blinding", [-1, ORDER, 1.0, True])
def test_malformed_blindings_are_refused(fast: FastBackend, blinding: object) -> None:
    with pytest.raises(CommitmentError):
        fast.commit(np.zeros(2, dtype=np.int64), blinding)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "point", [b"\x00" * 48, b"\xc0" * 48, bytes(47), secrets.token_bytes(48)]
)
def test_malformed_points_are_refused(fast: FastBackend, point: bytes) -> None:
    with pytest.raises(CommitmentError):
        fast.combine([point], [1])


# ------------------------------------------------------------------ openings
def openings(n: int, size: int) -> tuple[list[bytes], list[np.ndarray], list[int]]:
    rng = np.random.default_rng(n)
    fast = FastBackend(GeneratorCache(Path("/nonexistent/none")))  # not written
    vs = [rng.integers(-(2**31), 2**31, size) for _ in range(n)]
    rs = [secrets.randbelow(ORDER) for _ in range(n)]
    return [fast.commit(v, r) for v, r in zip(vs, rs, strict=True)], vs, rs


def test_a_batch_of_true_openings_verifies() -> None:
    assert verify_openings(*openings(6, 50))
    assert verify_openings([], [], [])


@pytest.mark.parametrize("what", ["value", "blinding", "swap"])
def test_one_false_opening_fails_the_batch(what: str) -> None:
    cs, vs, rs = openings(6, 50)
    if what == "value":
        vs[4] = vs[4].copy()
        vs[4][17] += 1
    elif what == "blinding":
        rs[2] = (rs[2] + 1) % ORDER
    else:
        cs[0], cs[1] = cs[1], cs[0]
    assert not verify_openings(cs, vs, rs)


def test_false_openings_that_cancel_in_a_plain_sum_still_fail() -> None:
    """Shifting one opening by d and another by -d keeps the unweighted sum: the
    batch's random weights are what catch it."""
    cs, vs, rs = openings(3, 20)
    vs[0], vs[1] = vs[0].copy(), vs[1].copy()
    vs[0][5] += 9
    vs[1][5] -= 9
    assert not verify_openings(cs, vs, rs)


@settings(max_examples=30, deadline=None)
@given(
    rows=st.lists(
        st.lists(st.integers(-(2**61), 2**61), min_size=3, max_size=3),
        min_size=1,
        max_size=5,
    ),
    weights=st.data(),
)
def test_the_weighted_sum_is_exact(
    rows: list[list[int]], weights: st.DataObject
) -> None:
    w = weights.draw(
        st.lists(st.integers(0, 2**128 - 1), min_size=len(rows), max_size=len(rows))
    )
    got = weighted_sum([np.array(r, dtype=np.int64) for r in rows], w)
    want = [sum(wj * r[i] for wj, r in zip(w, rows, strict=True)) for i in range(3)]
    assert got == want


# ------------------------------------------------------------------ the cache
def test_the_cache_is_reused_and_a_corrupt_one_rebuilt(tmp_path: Path) -> None:
    cache = GeneratorCache(tmp_path)
    want = FastBackend(cache).commit(np.arange(30), 7)
    assert len(cache.load(0)) == 30 * 96
    data = bytearray(cache.path(0).read_bytes())
    data[-5] ^= 1  # one flipped bit in the last point
    cache.path(0).write_bytes(bytes(data))
    assert cache.load(0) == b""
    assert FastBackend(cache).commit(np.arange(30), 7) == want
    assert len(cache.load(0)) == 30 * 96
    # A longer vector extends the chunk; a shorter one reads what is there.
    FastBackend(cache).commit(np.arange(50), 7)
    assert len(cache.load(0)) == 50 * 96


def test_generators_past_one_chunk_are_the_reference_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pot_flower.zk import pedersen

    monkeypatch.setattr(pedersen, "CHUNK", 8)
    fast = FastBackend(GeneratorCache(tmp_path))
    v = np.arange(-10, 10)
    assert fast.commit(v, 3) == reference_backend().commit(v, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "000000.bin",
        "000001.bin",
        "000002.bin",
    ]


@pytest.mark.parametrize(
    "values",
    [np.array([-(2**63)], dtype=np.int64), np.array([2**64 - 1], dtype=np.uint64)],
    ids=["int64 min", "uint64 max"],
)
def test_entries_past_the_range_are_refused_not_wrapped(
    fast: FastBackend, values: np.ndarray
) -> None:
    with pytest.raises(CommitmentError):
        fast.commit(values, 1)

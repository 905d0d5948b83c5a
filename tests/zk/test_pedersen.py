"""Pedersen vector commitments: two backends, one set of bytes; openings checked."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
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
    native_msm,
    reference_backend,
    signed_words,
    verify_openings,
    weighted_sum,
)

ENGINES = ["native", "arkworks"] if native_msm is not None else ["arkworks"]


@pytest.fixture(scope="module", params=ENGINES)
def fast(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> FastBackend:
    return FastBackend(GeneratorCache(tmp_path_factory.mktemp("g1")), request.param)


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


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.lists(
            st.integers(-(2**40), 2**40) | st.integers(-3, 3), min_size=4, max_size=4
        ),
        min_size=1,
        max_size=6,
    ),
    weights=st.data(),
)
def test_signed_words_are_the_weighted_sum(
    rows: list[list[int]], weights: st.DataObject
) -> None:
    w = weights.draw(
        st.lists(
            st.integers(0, 2**128 - 1) | st.integers(0, 2),
            min_size=len(rows),
            max_size=len(rows),
        )
    )
    vectors = [np.array(r, dtype=np.int64) for r in rows]
    words = signed_words(vectors, w)
    assert words is not None
    magnitudes, negative = words
    got = [
        (-1 if neg else 1) * sum(int(x) << (64 * k) for k, x in enumerate(row))
        for row, neg in zip(magnitudes, negative, strict=True)
    ]
    assert got == weighted_sum(vectors, w)


def test_signed_words_give_way_where_int64_would_overflow() -> None:
    assert signed_words([np.array([2**50])] * 4, [1, 2, 3, 4]) is None


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


# ------------------------------------------------------------ the C engine
needs_native = pytest.mark.skipif(
    native_msm is None and not os.environ.get("CI"),
    reason="the C extension pot_flower.zk._msm is not built",
)


def test_ci_builds_the_c_engine() -> None:
    """Where CI runs, the extension must have compiled: a silent fallback would
    hide a 4x slowdown."""
    if os.environ.get("CI"):
        assert native_msm is not None


def multipliers() -> list[str]:
    """The C engine's field multiplications this CPU can run."""
    if native_msm is None:
        return []
    kept = native_msm.multiplier()
    try:
        native_msm.multiplier("adx")
        return ["adx", "portable"]
    except ValueError:
        return ["portable"]
    finally:
        native_msm.multiplier(kept)


@pytest.fixture(params=multipliers() or ["none"])
def multiplier(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs a test under each field multiplication (then restores the default)."""
    if native_msm is None:
        pytest.skip("the C extension pot_flower.zk._msm is not built")
    kept = native_msm.multiplier()
    native_msm.multiplier(request.param)
    yield request.param
    native_msm.multiplier(kept)


@needs_native
@pytest.mark.parametrize(
    ("size", "high"),
    [
        (1, 1),
        (2, 3),
        (7, 2**62 - 1),
        (300, 2**8),
        (300, 2**20),
        (2000, 2**14),
        (2000, 2**40),
        (5000, 1),
    ],
)
def test_the_engines_commit_to_the_same_bytes(
    tmp_path_factory: pytest.TempPathFactory, size: int, high: int, multiplier: str
) -> None:
    cache = GeneratorCache(tmp_path_factory.mktemp("g1"))
    native, ark = FastBackend(cache, "native"), FastBackend(cache, "arkworks")
    rng = np.random.default_rng(size ^ high)
    for values in (
        rng.integers(-high, high + 1, size),
        rng.integers(0, high + 1, size),
        -rng.integers(0, high + 1, size),
        np.full(size, high),
        np.zeros(size, dtype=np.int64),
    ):
        r = secrets.randbelow(ORDER)
        assert native.commit(values, r) == ark.commit(values, r)


@needs_native
@settings(max_examples=20, deadline=None)
@given(
    values=st.lists(
        st.integers(-(2**400), 2**400) | st.integers(-(2**70), 2**70),
        min_size=0,
        max_size=9,
    )
)
def test_the_engines_agree_on_wide_scalars(values: list[int]) -> None:
    kept = native_msm.multiplier() if native_msm is not None else ""
    for name in multipliers():
        assert native_msm is not None
        native_msm.multiplier(name)
        try:
            _engines_agree_on_wide(values)
        finally:
            native_msm.multiplier(kept)


def _engines_agree_on_wide(values: list[int]) -> None:
    """Sums of weighted vectors: any width, either sign, past q too."""
    cache = GeneratorCache(Path("/nonexistent/none"))
    native, ark = FastBackend(cache, "native"), FastBackend(cache, "arkworks")
    assert native.commit_wide(values, 11) == ark.commit_wide(values, 11)
    ref = reference_backend()
    want = ref.combine(
        [ref.generator(i) for i in range(len(values))] + [ref.blinding_generator()],
        [*values, 11],
    )
    assert native.commit_wide(values, 11) == want


@needs_native
def test_the_engine_adds_a_point_to_itself_and_to_its_negation(
    multiplier: str,
) -> None:
    """Partial sums meeting themselves or their negation (impossible with
    independent generators, but the arithmetic must still be right)."""
    fast = FastBackend(GeneratorCache(Path("/nonexistent/none")), "native")
    xy = bytes(fast._ensure(2)[1].to_xy_bytes_be())
    assert native_msm is not None
    bases = native_msm.prepare(xy * 6)
    one = np.ones(6, dtype="<u8").tobytes()
    doubled = native_msm.msm(bases, one, bytes(6), 1)
    assert doubled == native_msm.msm(
        bases[: len(bases) // 6], (6).to_bytes(8, "little"), bytes(1), 1
    )
    assert native_msm.msm(bases, one, bytes([0, 1] * 3), 1) is None
    assert native_msm.msm(bases, bytes(48), bytes(6), 1) is None


@needs_native
def test_the_engine_refuses_malformed_input() -> None:
    assert native_msm is not None
    with pytest.raises(ValueError, match="96-byte"):
        native_msm.prepare(bytes(95))
    with pytest.raises(ValueError, match="below p"):
        native_msm.prepare(b"\xff" * 96)
    bases = native_msm.prepare(b"")
    with pytest.raises(ValueError, match="disagree"):
        native_msm.msm(bases, bytes(8), bytes(1), 1)  # no generator for it
    good = FastBackend(GeneratorCache(Path("/nonexistent/none")), "native")
    bases = good._ensure_prepared(2)
    for mags, signs, limbs in [(bytes(8), bytes(2), 1), (bytes(16), bytes(2), 0)]:
        with pytest.raises(ValueError, match="disagree"):
            native_msm.msm(bases, mags, signs, limbs)


def test_ci_runs_the_fast_multiplication_where_the_cpu_has_it() -> None:
    """x86-64 CPUs with BMI2/ADX (every one since 2015) take the mulx path."""
    if native_msm is not None and os.environ.get("CI") and "adx" in multipliers():
        assert native_msm.multiplier() == "adx"


@needs_native
def test_a_misaligned_buffer_is_refused_not_read() -> None:
    assert native_msm is not None
    fast = FastBackend(GeneratorCache(Path("/nonexistent/none")), "native")
    bases = fast._ensure_prepared(1)
    shifted = memoryview(b"\0" + bases)[1:]
    with pytest.raises(ValueError, match="aligned"):
        native_msm.msm(shifted, bytes(8), bytes(1), 1)


@needs_native
def test_a_refused_generator_row_leaves_the_backend_consistent(tmp_path: Path) -> None:
    """A cached row that is no field element (checksum intact) fails every
    commit the same way, and never desynchronises the two generator forms."""
    cache = GeneratorCache(tmp_path)
    FastBackend(cache, "native").commit(np.arange(4), 1)
    body = bytearray(cache.load(0))
    body[96 * 2 : 96 * 2 + 48] = b"\xff" * 48  # G_2's x >= p
    cache.store(0, bytes(body))
    fast = FastBackend(cache, "native")
    for _ in range(2):
        with pytest.raises(ValueError, match="below p"):
            fast.commit(np.arange(4), 1)
        assert len(fast._xy) == 0 and len(fast._prepared) == 0


@needs_native
def test_a_forked_child_gets_its_own_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The split sums' thread pool does not survive fork(): a child that had
    inherited it would wait forever for threads it does not have."""
    import multiprocessing

    from pot_flower.zk import pedersen

    monkeypatch.setattr(pedersen, "THREADS", 2)
    fast = FastBackend(GeneratorCache(Path("/nonexistent/none")), "native")
    rng = np.random.default_rng(9)
    values = [
        int(v) << 20 for v in rng.integers(-(2**50), 2**50, 2 * pedersen.PARALLEL_MIN)
    ]
    want = fast.commit_wide(values, 3)  # split in two: the parent's pool now exists
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=lambda: send.send(fast.commit_wide(values, 3)))
    child.start()
    try:
        assert receive.poll(60), "the child hung"
        assert receive.recv() == want
    finally:
        child.join(5)
        if child.is_alive():
            child.kill()


def test_weights_outside_128_bits_are_refused(fast: FastBackend) -> None:
    for bad in (-1, 1 << 128):
        with pytest.raises(CommitmentError, match="weights"):
            fast.commit_weighted([np.arange(3)], [bad], 1)

"""Pedersen vector commitments over BLS12-381 G1: ``C = sum(m_i G_i) + r H``.

Binding under the discrete logarithm assumption as long as nobody knows a
relation between the generators: each ``G_i`` is hashed to the curve (RFC 9380,
``BLS12381G1_XMD:SHA-256_SSWU_RO_``) from its index as 8 big-endian bytes, ``H``
from the empty message under its own domain tag, never ``k * G`` from a seed.
Hiding: ``r`` is uniform in the scalar field. Additively homomorphic:
``sum(w_j C_j) = Commit(sum(w_j m_j), sum(w_j r_j))``, which is what lets anyone
check a weighted sum of committed updates against its result without the updates.

Two backends, byte-identical (tested both ways on random vectors):

- :class:`ReferenceBackend`: py-ecc, pure Python, the scalars reduced mod the
  group order as the definition says; slow, the yardstick.
- :class:`FastBackend`: multi-scalar multiplication over generators cached on
  disk (:class:`GeneratorCache`, hashed with blst when pyblst is installed: 4x
  faster than arkworks' own, same points). Its engine is the package's C
  extension ``pot_flower.zk._msm`` where it was built (generators kept affine,
  signed scalars as wide as the values, batched affine additions: about 4x
  faster than arkworks on a model update), else py-arkworks-bls12381's
  multiexp. For arkworks, negative entries are not reduced to 255-bit scalars
  (8-11x slower): the vector is shifted by ``o = max(0, -min m)`` and
  ``o * sum(G_i)`` subtracted, a prefix sum kept per length.

Points travel as 48-byte compressed encodings (the ZCash/IETF format both
libraries use); the identity is ``0xc0`` followed by zeros.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

native_msm: ModuleType | None
try:  # the C engine; an install that could not compile it falls back to arkworks
    from pot_flower.zk import _msm as native_msm
except ImportError:  # pragma: no cover - depends on how the package was built
    native_msm = None

GENERATOR_DST = b"POT-FLOWER-PEDERSEN-V1_BLS12381G1_XMD:SHA-256_SSWU_RO_"
BLINDING_DST = b"POT-FLOWER-PEDERSEN-BLINDING-V1_BLS12381G1_XMD:SHA-256_SSWU_RO_"
ORDER = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001
"""The order q of G1 (the scalar field)."""
POINT_SIZE = 48
IDENTITY = bytes([0xC0]) + bytes(POINT_SIZE - 1)
MAX_ENTRY = 1 << 62
"""Entries must lie strictly within +-2**62 (int64 with room for the shift)."""


class CommitmentError(ValueError):
    """A malformed point, vector or blinding factor."""


def index_message(i: int) -> bytes:
    """The hash-to-curve message of generator ``G_i``."""
    return i.to_bytes(8, "big")


def check_values(values: np.ndarray | Sequence[int]) -> np.ndarray:
    """``values`` as a 1-d int64 array within +-2**62 (``CommitmentError`` if not)."""
    array = np.asarray(values)
    if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
        raise CommitmentError("a commitment opens to a 1-d vector of integers")
    if array.size and (int(array.max()) >= MAX_ENTRY or int(array.min()) <= -MAX_ENTRY):
        raise CommitmentError("vector entries must lie within +-2**62")
    return array.astype(np.int64, copy=False)


def check_blinding(blinding: int) -> int:
    """``blinding`` if it is a scalar in [0, q) (``CommitmentError`` if not)."""
    if type(blinding) is not int or not 0 <= blinding < ORDER:
        raise CommitmentError("the blinding factor must be an integer in [0, q)")
    return blinding


class Backend(Protocol):
    """What a backend computes; every method returns compressed points."""

    name: str

    def generator(self, i: int) -> bytes: ...

    def blinding_generator(self) -> bytes: ...

    def commit(self, values: np.ndarray, blinding: int) -> bytes: ...

    def combine(self, points: Sequence[bytes], weights: Sequence[int]) -> bytes: ...


# --------------------------------------------------------------- reference
class ReferenceBackend:
    """py-ecc: the definition, in pure Python (small vectors only)."""

    name = "py-ecc"

    def __init__(self) -> None:
        from py_ecc.bls.hash_to_curve import hash_to_G1
        from py_ecc.bls.point_compression import compress_G1, decompress_G1
        from py_ecc.optimized_bls12_381 import Z1, add, multiply

        self._hash, self._compress, self._decompress = (
            hash_to_G1,
            compress_G1,
            decompress_G1,
        )
        self._add, self._multiply, self._zero = add, multiply, Z1

    def _point(self, data: bytes) -> Any:
        if len(data) != POINT_SIZE:
            raise CommitmentError(f"a G1 point is {POINT_SIZE} bytes")
        try:
            return self._decompress(int.from_bytes(data, "big"))
        except (ValueError, AssertionError) as exc:
            raise CommitmentError(f"not a G1 point: {exc}") from exc

    def _bytes(self, point: Any) -> bytes:
        return int(self._compress(point)).to_bytes(POINT_SIZE, "big")

    @lru_cache(maxsize=4096)  # noqa: B019 - one instance per process
    def _generator_point(self, i: int) -> Any:
        return self._hash(index_message(i), GENERATOR_DST, hashlib.sha256)

    def generator(self, i: int) -> bytes:
        return self._bytes(self._generator_point(i))

    def blinding_generator(self) -> bytes:
        return self._bytes(self._hash(b"", BLINDING_DST, hashlib.sha256))

    def commit(self, values: np.ndarray, blinding: int) -> bytes:
        values = check_values(values)
        blinding = check_blinding(blinding)
        total = self._multiply(self._hash(b"", BLINDING_DST, hashlib.sha256), blinding)
        for i, v in enumerate(values.tolist()):
            if v % ORDER:
                total = self._add(
                    total, self._multiply(self._generator_point(i), v % ORDER)
                )
        return self._bytes(total)

    def combine(self, points: Sequence[bytes], weights: Sequence[int]) -> bytes:
        if len(points) != len(weights):
            raise CommitmentError("one weight per point")
        total = self._zero
        for p, w in zip(points, weights, strict=True):
            total = self._add(total, self._multiply(self._point(p), w % ORDER))
        return self._bytes(total)


# -------------------------------------------------------------------- fast
_HEADER = b"pot-flower G1 generators v1\n"


CHUNK = 1 << 16
"""Generators per cache file: a process reads only the files its model needs."""


class GeneratorCache:
    """Generators as uncompressed points, in files of up to :data:`CHUNK` each.

    File ``k`` holds ``G_{k*CHUNK}`` onwards. Layout: a header line, the count (8
    bytes, big-endian), the SHA-256 of the body, then ``x || y`` (96 bytes,
    big-endian) per point. A file whose checksum fails is ignored and rebuilt
    (corruption, not an attacker with write access to the validator's disk: such
    an attacker could change the code as well). Written beside and renamed over,
    so processes sharing the cache (a simulation's workers) never read a partial
    file.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @staticmethod
    def default_directory() -> Path:
        root = os.environ.get("POT_FLOWER_CACHE") or Path.home() / ".cache"
        return Path(root) / "pot-flower" / "pedersen-g1"

    def path(self, chunk: int) -> Path:
        return self.directory / f"{chunk:06d}.bin"

    def load(self, chunk: int) -> bytes:
        """The chunk's body (``96 * count`` bytes) if whole, else ``b""``."""
        try:
            data = self.path(chunk).read_bytes()
        except OSError:
            return b""
        start = len(_HEADER) + 8 + 32
        if len(data) < start or not data.startswith(_HEADER):
            return b""
        count = int.from_bytes(data[len(_HEADER) : len(_HEADER) + 8], "big")
        body = data[start:]
        digest = data[len(_HEADER) + 8 : start]
        if len(body) != 96 * count or hashlib.sha256(body).digest() != digest:
            return b""
        return body

    def store(self, chunk: int, body: bytes) -> None:
        """Write the chunk atomically; failures only cost speed."""
        data = (
            _HEADER
            + (len(body) // 96).to_bytes(8, "big")
            + hashlib.sha256(body).digest()
            + body
        )
        path = self.path(chunk)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError:
            pass


def _hash_compressed(i: int) -> bytes:
    """``G_i`` compressed, by blst if installed (same bytes as arkworks)."""
    try:
        import pyblst
    except ImportError:
        import py_arkworks_bls12381 as ark

        point = ark.G1Point.hash_to_curve(index_message(i), GENERATOR_DST)
        return bytes(point.to_compressed_bytes())
    element = pyblst.BlstP1Element().hash_to_group(index_message(i), GENERATOR_DST)
    return bytes(element.compress())


class FastBackend:
    """Multi-scalar multiplication over cached generators (C engine or arkworks).

    ``engine="native"`` needs the C extension, ``"arkworks"`` forces the
    fallback, ``None`` takes the extension where it was built.
    """

    def __init__(
        self, cache: GeneratorCache | None = None, engine: str | None = None
    ) -> None:
        import py_arkworks_bls12381 as ark

        if engine not in (None, "native", "arkworks"):
            raise ValueError(f"unknown engine {engine!r}")
        if engine == "native" and native_msm is None:
            raise RuntimeError("the C extension pot_flower.zk._msm is not built")
        self._native = native_msm if engine != "arkworks" else None
        self.name = "native" if self._native is not None else "arkworks"
        self._ark = ark
        self._cache = (
            cache
            if cache is not None
            else GeneratorCache(GeneratorCache.default_directory())
        )
        self._xy = bytearray()  # G_0.. as x || y rows, as the cache stores them
        self._prepared = b""  # the same in the C engine's form
        self._points: list[Any] = []  # the same as arkworks points, made lazily
        self._prefix: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._h = ark.G1Point.hash_to_curve(b"", BLINDING_DST)

    # -- generators
    def _ensure_xy(self, n: int) -> None:
        """Load (or hash) ``G_0..G_{n-1}``; the caller holds the lock."""
        while len(self._xy) < 96 * n:
            rows = self._chunk_rows(len(self._xy) // 96, n)
            if self._native is not None:  # first: a refused row leaves both as were
                self._prepared += self._native.prepare(rows)
            self._xy += rows

    def _ensure_prepared(self, n: int) -> bytes:
        """The C engine's generators, at least ``n`` of them."""
        with self._lock:
            self._ensure_xy(n)
            return self._prepared

    def _ensure(self, n: int) -> list[Any]:
        """``G_0..G_{n-1}`` as arkworks points."""
        with self._lock:
            self._ensure_xy(n)
            from_xy = self._ark.G1Point.from_xy_bytes_unchecked_be
            xy = self._xy
            self._points.extend(
                from_xy(bytes(xy[96 * i : 96 * (i + 1)]))
                for i in range(len(self._points), n)
            )
            return self._points

    def _chunk_rows(self, start: int, n: int) -> bytes:
        """Rows ``start..`` up to ``n`` or the end of ``start``'s chunk."""
        chunk, offset = divmod(start, CHUNK)
        want = min(CHUNK, n - chunk * CHUNK)
        body = self._cache.load(chunk)
        have = len(body) // 96
        if have < want:
            extra = [
                self._ark.G1Point.from_compressed_bytes_unchecked(
                    _hash_compressed(chunk * CHUNK + i)
                )
                for i in range(have, want)
            ]
            body += b"".join(bytes(p.to_xy_bytes_be()) for p in extra)
            self._cache.store(chunk, body)
        return body[96 * offset : 96 * want]

    def _offset_sum(self, n: int) -> Any:
        """``sum(G_0..G_{n-1})``, kept per length."""
        with self._lock:
            cached = self._prefix.get(n)
        if cached is None:
            points = self._ensure(n)
            cached = self._ark.G1Point.identity()
            for p in points[:n]:
                cached = cached + p
            with self._lock:
                self._prefix[n] = cached
        return cached

    def generator(self, i: int) -> bytes:
        return bytes(self._ensure(i + 1)[i].to_compressed_bytes())

    def blinding_generator(self) -> bytes:
        return bytes(self._h.to_compressed_bytes())

    def _scalars(self, values: np.ndarray) -> list[Any]:
        """Non-negative int64 values as scalars (32-byte little-endian rows)."""
        rows = np.zeros((values.size, 4), dtype="<u8")
        rows[:, 0] = values.astype(np.uint64)
        raw = rows.tobytes()
        from_le = self._ark.Scalar.from_le_bytes
        return [from_le(raw[32 * i : 32 * (i + 1)]) for i in range(values.size)]

    def _scalar(self, value: int) -> Any:
        return self._ark.Scalar.from_le_bytes((value % ORDER).to_bytes(32, "little"))

    def parse_point(self, data: bytes) -> Any:
        """A canonical G1 point in the subgroup (``CommitmentError`` if not)."""
        if len(data) != POINT_SIZE:
            raise CommitmentError(f"a G1 point is {POINT_SIZE} bytes")
        try:
            point = self._ark.G1Point.from_compressed_bytes(data)
        except Exception as exc:  # the binding raises its own error types
            raise CommitmentError(f"not a G1 point: {exc}") from exc
        # One encoding per point: arkworks accepts an infinity flag with stray bits.
        if bytes(point.to_compressed_bytes()) != data or not point.is_in_subgroup():
            raise CommitmentError("not the canonical encoding of a G1 point")
        return point

    def _shifted_commit(
        self, scalars: list[Any], size: int, offset: int, blinding: int
    ) -> Any:
        """``sum((m_i + offset) G_i) - offset * sum(G_i) + r H`` from the scalars."""
        total = self._h * self._scalar(check_blinding(blinding))
        if size:
            points = self._ensure(size)[:size]
            total = total + self._ark.G1Point.multiexp_unchecked(points, scalars)
            if offset:
                total = total - self._offset_sum(size) * self._scalar(offset)
        return total

    def _native_commit(
        self,
        engine: Any,
        magnitudes: bytes,
        negative: bytes,
        limbs: int,
        r: int,
        *,
        threads: int = 1,
    ) -> bytes:
        """``sum(+-|m_i| G_i) + r H`` by the C engine, compressed.

        With ``threads > 1`` the generators are split into that many ranges
        whose sums run at once (the engine releases the GIL): for validators,
        whose check runs while the miners wait. Any split gives the same point.
        """
        total = self._h * self._scalar(check_blinding(r))
        n = len(negative)
        parts = max(1, min(threads, n // PARALLEL_MIN))
        if n:
            bases = memoryview(self._ensure_prepared(n))
            mags, signs = memoryview(magnitudes), memoryview(negative)
            cuts = [n * k // parts for k in range(parts + 1)]
            ranges = list(itertools.pairwise(cuts))

            def part(lo: int, hi: int) -> bytes | None:
                step = 8 * limbs
                return engine.msm(  # type: ignore[no-any-return]
                    bases[96 * lo : 96 * hi],
                    mags[step * lo : step * hi],
                    signs[lo:hi],
                    limbs,
                )

            if parts == 1:
                sums = [part(0, n)]
            else:
                sums = list(_pool().map(part, *zip(*ranges, strict=True)))
            for xy in sums:
                if xy is not None:
                    total = total + self._ark.G1Point.from_xy_bytes_unchecked_be(xy)
        return bytes(total.to_compressed_bytes())

    def commit(self, values: np.ndarray, blinding: int) -> bytes:
        values = check_values(values)
        if self._native is not None:
            magnitudes = np.abs(values).astype("<u8").tobytes()
            negative = (values < 0).astype(np.uint8).tobytes()
            return self._native_commit(self._native, magnitudes, negative, 1, blinding)
        offset = max(0, -int(values.min())) if values.size else 0
        shifted = values + offset if offset else values
        point = self._shifted_commit(
            self._scalars(shifted), values.size, offset, blinding
        )
        return bytes(point.to_compressed_bytes())

    def commit_wide(self, values: Sequence[int], blinding: int) -> bytes:
        """A commitment to Python integers of any size (sums of weighted vectors).

        The C engine takes signed magnitudes of as many 64-bit words as the
        widest needs; arkworks shifts by the most negative entry as
        :meth:`commit` does (scalars as long as the values' range, reduced mod q
        past it).
        """
        if self._native is not None:
            top = max((abs(v) for v in values), default=0)
            if top.bit_length() > 256:  # the same points with fewer words
                values = [v % ORDER for v in values]
                top = max(values)
            limbs = max(1, (top.bit_length() + 63) // 64)
            magnitudes = b"".join(abs(v).to_bytes(8 * limbs, "little") for v in values)
            negative = bytes(v < 0 for v in values)
            return self._native_commit(
                self._native, magnitudes, negative, limbs, blinding, threads=THREADS
            )
        offset = max(0, -min(values)) if values else 0
        scalars = [self._scalar(v + offset) for v in values]
        point = self._shifted_commit(scalars, len(values), offset, blinding)
        return bytes(point.to_compressed_bytes())

    def commit_weighted(
        self, vectors: Sequence[np.ndarray], weights: Sequence[int], blinding: int
    ) -> bytes:
        """``Commit(sum(w_j v_j), blinding)`` for weights in [0, 2**128)."""
        if any(not 0 <= w < 1 << 128 for w in weights):
            raise CommitmentError("weights must lie in [0, 2**128)")
        words = signed_words(vectors, weights) if self._native is not None else None
        if words is None:
            return self.commit_wide(weighted_sum(vectors, weights), blinding)
        magnitudes, negative = words
        return self._native_commit(
            self._native,
            magnitudes.tobytes(),
            negative.astype(np.uint8).tobytes(),
            magnitudes.shape[1],
            blinding,
            threads=THREADS,
        )

    def combine(self, points: Sequence[bytes], weights: Sequence[int]) -> bytes:
        if len(points) != len(weights):
            raise CommitmentError("one weight per point")
        if not points:
            return IDENTITY
        parsed = [self.parse_point(p) for p in points]
        scalars = [self._scalar(w) for w in weights]
        total = self._ark.G1Point.multiexp_unchecked(parsed, scalars)
        return bytes(total.to_compressed_bytes())


def _usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


THREADS = min(4, _usable_cores())
"""Threads for the wide sums validators and audits compute (not a miner's commit:
simulated miners already share the cores)."""
PARALLEL_MIN = 8192
"""Generators per thread below which splitting does not pay."""


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(THREADS, thread_name_prefix="pot-msm")


# A forked child inherits the executor but none of its threads: start afresh.
os.register_at_fork(after_in_child=_pool.cache_clear)


@lru_cache(maxsize=1)
def fast_backend() -> FastBackend:
    """The process's fast backend (its generators loaded once)."""
    return FastBackend()


@lru_cache(maxsize=1)
def reference_backend() -> ReferenceBackend:
    """The process's reference backend."""
    return ReferenceBackend()


# ---------------------------------------------------------------- openings
def batch_weights(
    commitments: Sequence[bytes],
    vectors: Sequence[np.ndarray],
    blindings: Sequence[int],
) -> list[int]:
    """128-bit weights for :func:`verify_openings`, hashed from everything checked.

    Fiat-Shamir: a prover who wants a false opening to pass must make the
    weighted sums agree for weights it cannot choose; each try succeeds with
    probability 2**-128.
    """
    h = hashlib.sha256(b"pot-flower/pedersen-batch/v1")
    for c, v, r in zip(commitments, vectors, blindings, strict=True):
        h.update(c)
        h.update(np.ascontiguousarray(v, dtype="<i8").tobytes())
        h.update(len(v).to_bytes(8, "big") + r.to_bytes(32, "big"))
    seed = h.digest()
    return [
        int.from_bytes(hashlib.sha256(seed + j.to_bytes(8, "big")).digest()[:16], "big")
        for j in range(len(commitments))
    ]


def weighted_sum(vectors: Sequence[np.ndarray], weights: Sequence[int]) -> list[int]:
    """``sum(w_j v_j)`` exactly, for non-negative weights below 2**128.

    The weights are split into 16-bit limbs so that each limb's dot product
    stays within int64 (``n * 2**16 * max|v| < 2**63``); past that, Python
    integers row by row.
    """
    stack = np.stack([np.asarray(v, dtype=np.int64) for v in vectors])
    top = int(np.abs(stack).max()) if stack.size else 0
    if len(vectors) * 0xFFFF * top >= 1 << 63:
        out = [0] * stack.shape[1]
        for w, row in zip(weights, stack.tolist(), strict=True):
            out = [o + w * x for o, x in zip(out, row, strict=True)]
        return out
    total = [0] * stack.shape[1]
    for k in range(8):
        limb = np.array([(w >> (16 * k)) & 0xFFFF for w in weights], dtype=np.int64)
        part = np.einsum("j,jn->n", limb, stack).tolist()
        total = [t + (p << (16 * k)) for t, p in zip(total, part, strict=True)]
    return total


def _carry(digits: np.ndarray) -> None:
    """Carry base-2**16 digits into [0, 2**16); the top digit keeps the sign."""
    for d in range(digits.shape[1] - 1):
        carry = digits[:, d] >> 16  # floor: negative digits borrow
        digits[:, d] -= carry << 16
        digits[:, d + 1] += carry


def signed_words(
    vectors: Sequence[np.ndarray], weights: Sequence[int]
) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`weighted_sum` as signs and 64-bit magnitude words, in numpy.

    Returns ``(magnitudes, negative)``: an ``(n, L)`` little-endian uint64 array
    and an ``(n,)`` bool array; ``None`` where a limb's dot product could leave
    int64 (use :func:`weighted_sum` then). Base-2**16 digits, one per weight
    limb, carried in int64: the same integers without 37,610 Python ones.
    """
    stack = np.stack([np.asarray(v, dtype=np.int64) for v in vectors])
    top = int(np.abs(stack).max()) if stack.size else 0
    bound = len(vectors) * 0xFFFF * top
    if bound >= 1 << 61:  # room for the carries
        return None
    count = 8 + (bound.bit_length() + 15) // 16 + 1  # weights, dot products, sign
    count += -count % 4
    digits = np.zeros((stack.shape[1], count), dtype=np.int64)
    for k in range(8):
        limb = np.array([(w >> (16 * k)) & 0xFFFF for w in weights], dtype=np.int64)
        digits[:, k] += np.einsum("j,jn->n", limb, stack)  # 5x np.matmul on int64
    _carry(digits)
    negative = digits[:, -1] < 0
    digits[negative] *= -1
    _carry(digits)
    words = digits.astype("<u8")
    magnitudes = (
        words[:, 0::4]
        | (words[:, 1::4] << np.uint64(16))
        | (words[:, 2::4] << np.uint64(32))
        | (words[:, 3::4] << np.uint64(48))
    )
    return np.ascontiguousarray(magnitudes), negative


def verify_openings(
    commitments: Sequence[bytes],
    vectors: Sequence[np.ndarray],
    blindings: Sequence[int],
    backend: FastBackend | None = None,
) -> bool:
    """Whether every commitment opens to its vector and blinding, in one check.

    ``sum(rho_j C_j) == Commit(sum(rho_j v_j), sum(rho_j r_j))`` with
    :func:`batch_weights`: one multi-scalar multiplication over the vector
    length instead of one per commitment. ``False`` says some opening is wrong
    (check each to find which); all vectors must have the same length.
    """
    if not commitments:
        return True
    if not len(commitments) == len(vectors) == len(blindings):
        raise CommitmentError("one vector and one blinding per commitment")
    fast = backend or fast_backend()
    arrays = [check_values(v) for v in vectors]
    if len({a.size for a in arrays}) != 1:
        raise CommitmentError("batched openings need vectors of one length")
    for r in blindings:
        check_blinding(r)
    weights = batch_weights(commitments, arrays, blindings)
    left = fast.combine(commitments, weights)
    blinding = sum(w * r for w, r in zip(weights, blindings, strict=True)) % ORDER
    right = fast.commit_weighted(arrays, weights, blinding)
    return left == right

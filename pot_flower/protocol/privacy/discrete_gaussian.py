"""Exact discrete Gaussian noise from a seed, in integer arithmetic only.

Canonne, Kamath and Steinke, "The Discrete Gaussian for Differential Privacy"
(NeurIPS 2020), Algorithms 1-3: Bernoulli(exp(-gamma)) for rational gamma, the
discrete Laplace by rejection and the discrete Gaussian by rejection from it. No
float is ever drawn or compared, so every validator that has the seed draws the
same integers on any machine.

Randomness comes from one ChaCha20 keystream read as little-endian 64-bit words
(:class:`WordStream`); uniform integers below ``m`` are taken by masking a word to
``m``'s bit length and rejecting values at or above ``m``. :func:`sample` draws a
whole vector at once: every step of the algorithms runs on all coordinates still
pending, in index order, so its reads of the stream are fixed by the seed alone.
:func:`sample_one` is the same distribution written as the paper's scalar loops
over Python integers: the reference the tests hold :func:`sample` to (exact pmf).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from pot_flower.protocol.fixedpoint import IntArray

MAX_SIGMA = 1 << 14
"""Largest integer ``sigma`` :func:`sample` takes: every product stays in int64."""
_EXACT_LIMIT = 3_000_000_000
"""Above this, ``(|y| t - s)`` is squared in Python integers (a 1e-5 tail)."""
_K_LIMIT = 16
"""Algorithm 1's counter past which a coordinate finishes in Python integers."""

BoolArray = np.ndarray


class WordStream:
    """Uniform 64-bit words from ChaCha20 keyed by a 32-byte seed (nonce 0)."""

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError("the noise seed must be 32 bytes")
        cipher = Cipher(algorithms.ChaCha20(seed, bytes(16)), mode=None)
        self._encryptor = cipher.encryptor()

    def words(self, n: int) -> np.ndarray:
        """The next ``n`` words (uint64)."""
        raw = self._encryptor.update(bytes(8 * n))
        return np.frombuffer(raw, dtype="<u8").astype(np.uint64)

    def below(self, m: int) -> int:
        """One uniform integer in ``[0, m)`` (any positive Python integer)."""
        if m <= 0:
            raise ValueError("the range must be positive")
        bits = (m - 1).bit_length()
        chunks = max(1, (bits + 63) // 64)
        while True:
            value = 0
            for w in self.words(chunks):
                value = (value << 64) | int(w)
            value &= (1 << bits) - 1
            if value < m:
                return value


def uniform_below(stream: WordStream, m: IntArray) -> IntArray:
    """Uniform integers in ``[0, m[i])`` for every ``i`` (``0 < m < 2**63``)."""
    if m.size and int(m.min()) <= 0:
        raise ValueError("ranges must be positive")
    bits = _bit_lengths(m - 1)
    mask = np.where(
        bits >= 64, np.uint64(2**64 - 1), (np.uint64(1) << bits.astype(np.uint64)) - 1
    )
    out = np.empty(m.shape, dtype=np.int64)
    todo = np.arange(m.size)
    while todo.size:
        draw = stream.words(todo.size) & mask[todo]
        ok = draw < m[todo].astype(np.uint64)
        out[todo[ok]] = draw[ok].astype(np.int64)
        todo = todo[~ok]
    return out


def _bit_lengths(x: IntArray) -> IntArray:
    """``int(v).bit_length()`` of non-negative int64 values, exactly."""
    bits = np.zeros(x.shape, dtype=np.int64)
    v = x.astype(np.uint64)
    for shift in (32, 16, 8, 4, 2, 1):
        big = v >= (np.uint64(1) << np.uint64(shift))
        bits[big] += shift
        v = np.where(big, v >> np.uint64(shift), v)
    return bits + (v > 0)


def bernoulli(stream: WordStream, num: IntArray, den: IntArray) -> BoolArray:
    """Bernoulli(num / den) for every coordinate (``0 <= num <= den``)."""
    result: BoolArray = uniform_below(stream, den) < num
    return result


def bernoulli_exp(stream: WordStream, num: IntArray, den: IntArray) -> BoolArray:
    """Bernoulli(exp(-num / den)) for every coordinate (``num >= 0, den > 0``).

    Algorithm 1: exp(-1) trials for the whole part, then the fraction by the
    alternating series; ``den * K`` must stay in int64 (``den < 2**58``).
    """
    whole = num // den
    alive = np.ones(num.shape, dtype=bool)
    one = np.ones(num.shape, dtype=np.int64)
    for j in range(1, int(whole.max(initial=0)) + 1):
        idx = np.flatnonzero(alive & (whole >= j))
        if not idx.size:
            break
        alive[idx] = _exp_fraction(stream, one[idx], one[idx])
    frac = num % den
    idx = np.flatnonzero(alive & (frac > 0))  # exp(-0) = 1: nothing to draw
    alive[idx] = _exp_fraction(stream, frac[idx], den[idx])
    return alive


def _exp_fraction(stream: WordStream, num: IntArray, den: IntArray) -> BoolArray:
    """Bernoulli(exp(-gamma)) for ``gamma = num / den`` in [0, 1]."""
    k = np.ones(num.shape, dtype=np.int64)
    active = np.arange(num.size)
    while active.size:
        if int(k[active[0]]) >= _K_LIMIT:  # all active share k; 1/16! odds
            for i in active:
                k[i] = _exp_fraction_counter(
                    stream, int(num[i]), int(den[i]), int(k[i])
                )
            break
        go = bernoulli(stream, num[active], den[active] * k[active])
        k[active[go]] += 1
        active = active[go]
    result: BoolArray = (k % 2) == 1
    return result


def _exp_fraction_counter(stream: WordStream, num: int, den: int, k: int) -> int:
    """Algorithm 1's loop from counter ``k`` on, in Python integers."""
    while stream.below(den * k) < num:
        k += 1
    return k


def discrete_laplace(stream: WordStream, t: int, n: int) -> IntArray:
    """``n`` draws with P(x) proportional to exp(-|x| / t) (Algorithm 2)."""
    out = np.empty(n, dtype=np.int64)
    todo = np.arange(n)
    while todo.size:
        tt = np.full(todo.size, t, dtype=np.int64)
        u = uniform_below(stream, tt)
        keep = bernoulli_exp(stream, u, tt)
        picked, u = todo[keep], u[keep]
        ones = np.ones(picked.size, dtype=np.int64)
        v = np.zeros(picked.size, dtype=np.int64)
        going = np.arange(picked.size)
        while going.size:
            more = bernoulli_exp(stream, ones[: going.size], ones[: going.size])
            v[going[more]] += 1
            going = going[more]
        x = u + t * v
        negative = bernoulli(stream, ones, 2 * ones)
        fine = ~(negative & (x == 0))
        out[picked[fine]] = np.where(negative, -x, x)[fine]
        # Rejected coordinates start over, still in index order.
        todo = np.sort(np.concatenate([todo[~keep], picked[~fine]]))
    return out


def sample(seed: bytes, sigma: int, n: int) -> IntArray:
    """``n`` independent draws from the discrete Gaussian N_Z(0, sigma**2).

    ``sigma`` is an integer in ``[1, MAX_SIGMA]`` (the noise in lattice units);
    Algorithm 3 with ``t = sigma + 1``.
    """
    if not 1 <= sigma <= MAX_SIGMA:
        raise ValueError(f"sigma must be an integer in [1, {MAX_SIGMA}]")
    if n < 0:
        raise ValueError("n must be non-negative")
    stream = WordStream(seed)
    s, t = sigma * sigma, sigma + 1
    den = 2 * s * t * t
    out = np.empty(n, dtype=np.int64)
    todo = np.arange(n)
    while todo.size:
        y = discrete_laplace(stream, t, todo.size)
        gap = np.abs(y) * t - s
        near = np.abs(gap) <= _EXACT_LIMIT
        accept = np.zeros(todo.size, dtype=bool)
        idx = np.flatnonzero(near)
        accept[idx] = bernoulli_exp(
            stream, gap[idx] * gap[idx], np.full(idx.size, den, dtype=np.int64)
        )
        for i in np.flatnonzero(~near):  # the far tail: exact in Python integers
            accept[i] = _bernoulli_exp_int(stream, int(gap[i]) ** 2, den)
        out[todo[accept]] = y[accept]
        todo = todo[~accept]
    return out


def _bernoulli_exp_int(stream: WordStream, num: int, den: int) -> bool:
    """Bernoulli(exp(-num / den)) in Python integers (Algorithm 1)."""
    for _ in range(num // den):
        if not _exp_fraction_int(stream, 1, 1):
            return False
    return _exp_fraction_int(stream, num % den, den)


def _exp_fraction_int(stream: WordStream, num: int, den: int) -> bool:
    if num == 0:
        return True
    return _exp_fraction_counter(stream, num, den, 1) % 2 == 1


def sample_one(stream: WordStream, sigma_sq: Fraction) -> int:
    """One draw from N_Z(0, sigma_sq): Algorithm 3 verbatim, any rational variance.

    The reference implementation (Python integers and fractions, one coordinate at
    a time); slow, and the yardstick :func:`sample` is tested against.
    """
    if sigma_sq <= 0:
        raise ValueError("the variance must be positive")
    t = _isqrt_floor(sigma_sq) + 1
    while True:
        y = _laplace_one(stream, t)
        gamma = (abs(y) - sigma_sq / t) ** 2 / (2 * sigma_sq)
        if _bernoulli_exp_int(stream, gamma.numerator, gamma.denominator):
            return y


def _laplace_one(stream: WordStream, t: int) -> int:
    while True:
        u = stream.below(t)
        if not _bernoulli_exp_int(stream, u, t):
            continue
        v = 0
        while _bernoulli_exp_int(stream, 1, 1):
            v += 1
        x = u + t * v
        negative = stream.below(2) == 1
        if negative and x == 0:
            continue
        return -x if negative else x


def _isqrt_floor(q: Fraction) -> int:
    """floor(sqrt(q)) for a positive rational."""
    import math

    r = math.isqrt(q.numerator // q.denominator)
    while (r + 1) ** 2 <= q:
        r += 1
    while r * r > q:
        r -= 1
    return r

"""Quorum and watermark arithmetic: small pure functions the protocol is built on."""

from __future__ import annotations


def max_faulty(n: int) -> int:
    """Largest f with n >= 3f + 1: how many Byzantine replicas n tolerates."""
    if n < 1:
        raise ValueError("a committee needs at least one replica")
    return (n - 1) // 3


def quorum(n: int) -> int:
    """Smallest q such that any two quorums share f + 1 replicas (>= 1 honest).

    For n = 3f + 1 this is the familiar 2f + 1; for other n it is
    ceil((n + f + 1) / 2), which keeps intersection while q <= n - f keeps liveness.
    """
    f = max_faulty(n)
    return (n + f + 2) // 2


def weak_quorum(n: int) -> int:
    """F + 1: enough replicas that at least one is honest."""
    return max_faulty(n) + 1


def primary(view: int, n: int) -> int:
    """The replica that leads ``view`` (round-robin)."""
    return view % n


def in_window(seq: int, low: int, window: int) -> bool:
    """Whether ``seq`` lies between the watermarks: low < seq <= low + window."""
    return low < seq <= low + window


def is_checkpoint(seq: int, interval: int) -> bool:
    """Whether executing ``seq`` produces a checkpoint."""
    return seq > 0 and seq % interval == 0

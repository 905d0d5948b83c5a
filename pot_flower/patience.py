"""Waiting for peers: retry with back-off, give up after a while, stop when told.

A validator that lacks something its peers hold (a payload, ledger blocks) asks
again and again: a quorum's signatures prove enough honest peers hold it. It never
decides from an absence; it either gets the thing, is told to stop, or gives up
after its patience so that the caller can retry the whole step later.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("pot.validator")

#: Longest pause between two attempts.
MAX_PAUSE_S = 2.0


class Interrupted(RuntimeError):
    """The validator is stopping while it waited for peers (the step is abandoned)."""


class Unavailable(RuntimeError):
    """Peers did not provide what was needed within the patience (retry later)."""


def wait_for(
    attempt: Callable[[], T | None],
    *,
    what: str,
    stopping: Callable[[], bool],
    patience_s: float,
) -> T:
    """Call ``attempt`` until it returns a value; back off between calls.

    Raises :class:`Interrupted` once ``stopping()`` is true and :class:`Unavailable`
    after ``patience_s`` seconds without a value.
    """
    pause = 0.05
    deadline = time.monotonic() + patience_s
    while True:
        value = attempt()
        if value is not None:
            return value
        if stopping():
            raise Interrupted(f"stopping while waiting for {what}")
        if time.monotonic() + pause > deadline:
            raise Unavailable(f"{what}: not obtained from peers in {patience_s:.0f} s")
        log.warning("%s: not obtained yet; retrying in %.2f s", what, pause)
        end = time.monotonic() + pause
        while time.monotonic() < end and not stopping():
            time.sleep(min(0.05, pause))
        pause = min(2 * pause, MAX_PAUSE_S)

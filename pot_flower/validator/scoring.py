"""A validator's scoring role: the task owner's score function over a round's updates.

The score function takes the round's base model and a miner's returned model (both
``{name: ndarray}``) and returns a float, higher for a more useful update: for
example the agreement of the update with an update the validator trains on its own
validation data (FLTrust's trust score), or the validation loss it removes. What it
returns is signed as integers (:mod:`pot_flower.protocol.scores`); the committee's
median of those integers decides.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from pot_flower.protocol.batch import SubmissionRef
from pot_flower.protocol.model import Arrays, ModelFormatError, decode_arrays
from pot_flower.protocol.scores import to_micro

ScoreFn = Callable[[Arrays, Arrays], float]
log = logging.getLogger(__name__)


def load_score_fn(path: str) -> ScoreFn:
    """The function named ``"package.module:function"`` (``ValueError`` if not)."""
    module_name, _, name = path.partition(":")
    if not module_name or not name:
        raise ValueError(f"score function {path!r} is not 'module:function'")
    try:
        function = getattr(importlib.import_module(module_name), name)
    except Exception as exc:  # the task owner's module may fail as it imports
        raise ValueError(f"cannot load score function {path!r}: {exc!r}") from exc
    if not callable(function):
        raise ValueError(f"score function {path!r} is not callable")
    return function  # type: ignore[no-any-return]


class ScoreFailed(Exception):
    """The task owner's score function raised on one update."""


def score_one(score_fn: ScoreFn, model: Arrays, payload: bytes | None) -> int | None:
    """One update's score in micro-units; None if it cannot be scored.

    Only well-formed, finite updates in the model's layout reach the score
    function; an exception it raises becomes :class:`ScoreFailed`.
    """
    if payload is None:
        return None
    try:
        returned = decode_arrays(payload)
    except ModelFormatError:
        return None
    if list(returned) != list(model) or any(
        returned[k].shape != model[k].shape
        or returned[k].dtype != model[k].dtype
        or (returned[k].dtype.kind == "f" and not np.isfinite(returned[k]).all())
        for k in model
    ):
        return None
    try:
        return to_micro(float(score_fn(model, returned)))
    except Exception as exc:  # the task owner's code, on a miner's bytes
        raise ScoreFailed(repr(exc)[:200]) from exc


def score_batch(
    score_fn: ScoreFn,
    model: Arrays,
    submissions: Sequence[SubmissionRef],
    payloads: Mapping[bytes, bytes],
) -> list[int | None]:
    """Every submission's score, in batch order (None where it cannot be scored).

    Failures of the score function score nothing and are logged once per batch
    (a miner's bytes must not buy a traceback each).
    """
    scores: list[int | None] = []
    failures: list[str] = []
    for s in submissions:
        payload = payloads.get(s.payload) if s.payload is not None else None
        try:
            scores.append(score_one(score_fn, model, payload))
        except ScoreFailed as exc:
            scores.append(None)
            failures.append(str(exc))
    if failures:
        log.warning(
            "score function failed on %d of %d updates (first: %s)",
            len(failures),
            len(submissions),
            failures[0],
        )
    return scores


CACHE_ENTRIES = 16_384
"""Scores remembered per (base model, payload), least recently used first out: a
repeated or reshuffled batch is answered from memory, so a caller cannot make the
score function run twice on the same update."""


class Scorer:
    """A validator daemon's score function, serialized, with a bounded memory.

    The task owner's function may hold a model and is not assumed thread-safe:
    one batch is scored at a time. Each update is scored once per base model; a
    failure of the function is not remembered (the next request tries again).
    The function gets a copy of the base model, so it cannot change the chain's.
    """

    def __init__(self, score_fn: ScoreFn) -> None:
        self.score_fn = score_fn
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[bytes, bytes], int | None] = OrderedDict()

    def scores(
        self,
        model: Arrays,
        model_digest: bytes,
        submissions: Sequence[SubmissionRef],
        read: Callable[[bytes], bytes | None],
    ) -> list[int | None]:
        """Every submission's score in batch order (None: cannot be scored).

        ``read`` returns a payload's bytes (None if this validator lacks it); it
        is called only for updates not scored yet.
        """
        with self._lock:
            known: dict[bytes, int | None] = {}
            for s in submissions:
                key = (model_digest, s.payload or b"")
                if s.payload is not None and key in self._cache:
                    self._cache.move_to_end(key)
                    known[s.payload] = self._cache[key]
            fresh = [
                d
                for d in dict.fromkeys(s.payload for s in submissions if s.payload)
                if d not in known
            ]
            if fresh:
                base = {k: v.copy() for k, v in model.items()}
                failures: list[str] = []
                for digest in fresh:
                    data = read(digest)
                    if data is None:  # not here (any more): nothing to remember
                        known[digest] = None
                        continue
                    try:
                        known[digest] = score_one(self.score_fn, base, data)
                    except ScoreFailed as exc:
                        known[digest] = None
                        failures.append(str(exc))
                        continue
                    self._cache[(model_digest, digest)] = known[digest]
                    if len(self._cache) > CACHE_ENTRIES:
                        self._cache.popitem(last=False)
                if failures:
                    log.warning(
                        "score function failed on %d of %d updates (first: %s)",
                        len(failures),
                        len(fresh),
                        failures[0],
                    )
            return [
                None if s.payload is None else known[s.payload] for s in submissions
            ]

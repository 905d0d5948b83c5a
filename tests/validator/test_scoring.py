"""A validator's scoring role: what reaches the score function, and what it costs."""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pytest

from pot_flower.protocol.batch import SubmissionRef
from pot_flower.protocol.model import encode_arrays
from pot_flower.validator.scoring import load_score_fn, score_batch

MODEL = {"w": np.zeros(4, np.float32)}


def ref(payload: bytes | None) -> tuple[SubmissionRef, dict[bytes, bytes]]:
    if payload is None:
        return SubmissionRef(1, b"e", b"s", None), {}
    digest = hashlib.sha256(payload).digest()
    return SubmissionRef(1, b"e", b"s", digest), {digest: payload}


def test_only_finite_updates_in_the_models_layout_are_scored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[float] = []

    def score(base: dict, returned: dict) -> float:  # type: ignore[type-arg]
        value = float(returned["w"][0])
        if value == 3.0:
            raise RuntimeError("task owner's bug")
        seen.append(value)
        return value

    payloads = [
        encode_arrays({"w": np.full(4, 0.5, np.float32)}),
        encode_arrays({"w": np.array([np.nan, 0, 0, 0], np.float32)}),
        encode_arrays({"w": np.zeros(5, np.float32)}),
        encode_arrays({"w": np.zeros(4, np.float64)}),
        b"not arrays",
        None,
        *[encode_arrays({"w": np.full(4, 3.0, np.float32)})] * 3,
    ]
    refs, store = [], {}
    for p in payloads:
        r, d = ref(p)
        refs.append(r)
        store.update(d)
    with caplog.at_level(logging.WARNING):
        scores = score_batch(score, MODEL, refs, store)
    assert scores == [500_000, None, None, None, None, None, None, None, None]
    assert seen == [0.5]
    failures = [r for r in caplog.records if "score function failed" in r.message]
    assert len(failures) == 1 and "3 of 9" in failures[0].getMessage()


def test_score_function_paths_are_checked() -> None:
    assert load_score_fn("math:sqrt")(4) == 2  # type: ignore[arg-type,call-arg]
    for bad in ("math", "no_such_module:f", "math:no_such_function", "math:pi"):
        with pytest.raises(ValueError, match="score function"):
            load_score_fn(bad)

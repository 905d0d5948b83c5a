"""A validator's scoring role: what reaches the score function, and what it costs."""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pytest
from pot_support import chain, model, trained

from pot_flower.protocol.batch import SubmissionRef
from pot_flower.protocol.model import Arrays, encode_arrays, model_digest
from pot_flower.validator import scoring
from pot_flower.validator.scoring import Scorer, load_score_fn, score_batch

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


# ------------------------------------------------- a daemon's Scorer (review)
def _payloads(base: Arrays, count: int) -> tuple[list[bytes], dict[bytes, bytes]]:
    stored = {}
    for i in range(count):
        data = encode_arrays(trained(base, i))
        stored[hashlib.sha256(data).digest()] = data
    return list(stored), stored


def test_the_scorer_remembers_scores_and_survives_eviction_mid_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(scoring, "CACHE_ENTRIES", 2)
    base = model()
    digests, stored = _payloads(base, 4)
    calls: list[int] = []

    def fn(b: dict, r: dict) -> float:  # type: ignore[type-arg]
        calls.append(1)
        return 0.5

    scorer = Scorer(fn)
    refs = [SubmissionRef(1, None, None, d) for d in digests]
    assert scorer.scores(base, b"B" * 32, refs[:2], stored.get) == [500_000] * 2
    # New updates first, a remembered one last: the cache overflows mid-batch.
    assert (
        scorer.scores(base, b"B" * 32, [refs[2], refs[0]], stored.get) == [500_000] * 2
    )
    assert len(calls) == 3  # refs[0] came from memory
    # Another base model: scored again.
    scorer.scores(base, b"C" * 32, [refs[0]], stored.get)
    assert len(calls) == 4


def test_the_scorer_neither_remembers_failures_nor_lets_the_function_touch_state() -> (
    None
):

    state = chain()
    digests, stored = _payloads(state.model, 1)
    failing = [True]

    def careless(base: dict, returned: dict) -> float:  # type: ignore[type-arg]
        base["fc.bias"] += 1.0  # e.g. a torch.from_numpy view trained in place
        if failing[0]:
            raise RuntimeError("validation data not mounted yet")
        return 0.25

    scorer = Scorer(careless)
    refs = [SubmissionRef(1, None, None, digests[0])]
    assert scorer.scores(state.model, state.model_digest, refs, stored.get) == [None]
    failing[0] = False
    assert scorer.scores(state.model, state.model_digest, refs, stored.get) == [250_000]
    assert model_digest(state.model) == state.model_digest

"""Builders for PoT round tests: a chain, honest miners, and one round's batch."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pot_flower.committee.embedded import EmbeddedCommittee
from pot_flower.protocol.batch import RoundBatch, SubmissionRef
from pot_flower.protocol.chain import ChainState, genesis
from pot_flower.protocol.fixedpoint import max_norm_units
from pot_flower.protocol.model import Arrays
from pot_flower.protocol.params import Params
from pot_flower.protocol.submission import Submission, build_submission
from pot_flower.zk.signatures import SigningKey

RUN = 77
VALIDATOR_KEYS = [SigningKey.from_seed(b"validator-%d" % i) for i in range(4)]


def model(seed: int = 0) -> Arrays:
    rng = np.random.default_rng(seed)
    return {
        "conv.weight": rng.standard_normal((4, 1, 3, 3)).astype(np.float32),
        "fc.weight": rng.standard_normal((10, 36)).astype(np.float32),
        "fc.bias": np.zeros(10, np.float32),
        "bn.num_batches_tracked": np.array(5, dtype=np.int64),
    }


def chain(**params: object) -> ChainState:
    defaults: dict[str, object] = {
        "run": RUN,
        "validators": tuple(k.verify_key.raw for k in VALIDATOR_KEYS),
        "quorum": 3,
        "norm_bound_units": max_norm_units(10.0),
    }
    defaults.update(params)
    _, state = genesis(Params(**defaults), model())  # type: ignore[arg-type]
    return state


def miner(i: int) -> SigningKey:
    return SigningKey.from_seed(b"miner-%d" % i)


def trained(base: Arrays, seed: int, scale: float = 0.01) -> Arrays:
    """An honest-looking update: a direction all miners share, plus its own noise.

    Shared, as SGD steps on one task are: against the median of the *other*
    updates (what pay is measured against under the mean) pure noise is chance.
    """
    rng = np.random.default_rng(1000 + seed)
    shared = np.random.default_rng(999)
    out: Arrays = {}
    for name, array in base.items():
        if array.dtype.kind == "f":
            step = shared.standard_normal(array.shape) + rng.standard_normal(
                array.shape
            )
            out[name] = (array + step * (scale / np.sqrt(2))).astype(array.dtype)
        else:
            out[name] = array + 1
    return out


@dataclass
class RoundBuilder:
    """Collects submissions for the next round of ``state``."""

    state: ChainState
    refs: list[SubmissionRef] = field(default_factory=list)
    payloads: dict[bytes, bytes] = field(default_factory=dict)

    def honest(
        self, i: int, *, examples: int = 100, node: int | None = None
    ) -> Submission:
        sub = self.sign(i, trained(self.state.model, i), examples=examples)
        self.add(sub, node=1000 + i if node is None else node)
        return sub

    def sign(
        self, i: int, returned: Arrays, *, examples: int = 100, **overrides: object
    ) -> Submission:
        kwargs: dict[str, object] = {
            "run": self.state.params.run,
            "round_": self.state.height + 1,
            "node": 1000 + i,
            "nonce": self.state.nonce(),
            "received": self.state.model,
            "returned": returned,
            "num_examples": examples,
        }
        kwargs.update(overrides)
        return build_submission(miner(i), **kwargs)  # type: ignore[arg-type]

    def add(
        self,
        sub: Submission | None,
        *,
        node: int,
        envelope: bytes | None = None,
        signature: bytes | None = None,
        payload: bytes | None = None,
    ) -> None:
        env = (
            envelope if envelope is not None else (sub.envelope_bytes if sub else None)
        )
        sig = signature if signature is not None else (sub.signature if sub else None)
        data = payload if payload is not None else (sub.payload if sub else None)
        digest = None
        if data is not None:
            digest = hashlib.sha256(data).digest()
            self.payloads[digest] = data
        self.refs.append(SubmissionRef(node, env, sig, digest))

    def batch(self, **overrides: object) -> bytes:
        kwargs: dict[str, object] = {
            "run": self.state.params.run,
            "round": self.state.height + 1,
            "submissions": tuple(self.refs),
        }
        kwargs.update(overrides)
        return RoundBatch(**kwargs).to_bytes()  # type: ignore[arg-type]


JUNK = SubmissionRef(999, b"junk", b"junk", None)  # a reply nobody signed


def run_committee(
    directory: Path,
    *,
    run: int = 5,
    rounds: int = 3,
    nodes: tuple[int, ...] = (100, 101, 102, 103, 104),
    bad: SubmissionRef | None = JUNK,
) -> EmbeddedCommittee:
    """An embedded committee's ledgers after ``rounds`` honest rounds (plus ``bad``)."""
    committee = EmbeddedCommittee(
        directory, run=run, model=model(), norm_bound_units=max_norm_units(10.0)
    )
    current = model()
    for _ in range(rounds):
        ticket = committee.ticket()
        refs, payloads = [], {}
        for i, node in enumerate(nodes):
            sub = build_submission(
                miner(i),
                run=run,
                round_=ticket.round,
                node=node,
                nonce=ticket.nonce,
                received=current,
                returned=trained(current, i + 10 * ticket.round),
                num_examples=10 + i,
            )
            digest = hashlib.sha256(sub.payload).digest()
            payloads[digest] = sub.payload
            refs.append(SubmissionRef(node, sub.envelope_bytes, sub.signature, digest))
        if bad is not None:
            refs.append(bad)
        current = committee.certify_round(refs, payloads).model
    committee.close()
    return committee

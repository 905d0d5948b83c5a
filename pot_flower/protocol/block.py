"""The block format: typed bodies of the genesis block and of round blocks.

This module owns the format. Execution builds blocks with it, the ledger's readers
(audit, CLI, strategy, transport) parse them with it; nothing else reads a body by
its keys. ``from_value`` is strict: exact field sets, types and sizes, and the
invariants one record carries on its own (a rejected submission is never paid, a
submission rejected before its signature verified records no envelope fields).
What needs the chain (links, registrations, reward sums) is the audit's job.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pot_flower.encoding import Decoded, DecodeError, decode, encode
from pot_flower.protocol.commitments import CommitmentKind, LinearOpening
from pot_flower.protocol.envelope import LocalDp
from pot_flower.protocol.fixedpoint import SCALE
from pot_flower.protocol.params import (
    MAX_EXAMPLES,
    MAX_SUBMISSIONS,
    Params,
    recorded_bls,
    recorded_commit_reveal,
    recorded_commitment,
    recorded_privacy,
)
from pot_flower.protocol.privacy.accountant import Spent
from pot_flower.protocol.privacy.adaptive import ClipStep
from pot_flower.protocol.reasons import Reason
from pot_flower.protocol.rewards import PPM
from pot_flower.protocol.robust.config import RobustConfig
from pot_flower.protocol.sealing import SALT_SIZE, ClosedSeals
from pot_flower.zk.signatures import PUBLIC_KEY_SIZE

GENESIS = "genesis"
ROUND = "round"
GENESIS_VERSION = 1
ACCEPTED = "accepted"
REJECTED = "rejected"
HASH_SIZE = 32
KEY_SIZE = PUBLIC_KEY_SIZE
COMMITMENT_SIZES = frozenset(kind.size for kind in CommitmentKind)

# Rejected before the envelope's signature verified: no miner, commitment, count.
PRE_ENVELOPE = frozenset(
    {Reason.MISSING_SIGNATURE, Reason.MALFORMED_ENVELOPE, Reason.BAD_SIGNATURE}
)
# Rejected before num-examples was checked: any signed count may be recorded.
BEFORE_EXAMPLES = frozenset(
    {
        Reason.NOT_REVEALED,  # a seal, no envelope: 0 examples
        Reason.UNKNOWN_MINER,
        Reason.WRONG_RUN,
        Reason.WRONG_ROUND,
        Reason.WRONG_NONCE,
        Reason.WRONG_NODE,
        Reason.BASE_DIGEST_MISMATCH,
    }
)
# Commit-reveal: no seal opened (a reveal records the salt of the one it opened).
SEALING_FAILED = frozenset(
    {Reason.NOT_SEALED, Reason.SEAL_MISMATCH, Reason.NOT_REVEALED}
)
# Passed every per-submission check, then lost to another submission.
PASSED = frozenset(
    {
        Reason.DUPLICATE_SUBMISSION,
        Reason.COPIED_UPDATE,
        Reason.NEAR_COPY,
        Reason.LOW_SCORE,
        Reason.NOT_SELECTED,
    }
)
# Reached the robust stage: may have been clipped there.
ROBUST_STAGE = frozenset({None, Reason.NOT_SELECTED})
# Judged on the miner's own signed update for this round, after its arrays matched
# the signed commitment: its reputation moves. A replay, a relay's fault or a
# payload swapped under a genuine signature (rejected before the commitment check,
# e.g. non-finite or over the norm bound) cannot cause these: no one can lower
# another's reputation.
JUDGED = frozenset({None, Reason.NOT_SELECTED, Reason.LOW_SCORE})
_REASONS = {r.value: r for r in Reason}


class Problem(StrEnum):
    """What kind of format error a body has."""

    CONTENT = "content"  # a field missing, unknown or of the wrong type or size
    VERDICTS = "verdicts"  # a verdict that contradicts itself
    REWARDS = "rewards"  # a record paid or scored against the rules
    ORDER = "order"  # a list that is not in canonical order


class BlockFormatError(ValueError):
    """A body that is not a well-formed block."""

    def __init__(self, problem: Problem, detail: str) -> None:
        super().__init__(detail)
        self.problem = problem
        self.detail = detail


# ----------------------------------------------------------- typed accessors
def _fail(detail: str, problem: Problem = Problem.CONTENT) -> BlockFormatError:
    return BlockFormatError(problem, detail)


def _dict(value: Decoded, what: str) -> dict[str, Decoded]:
    if not isinstance(value, dict):
        raise _fail(f"{what} is not a dictionary")
    return value


def _exact_keys(value: dict[str, Decoded], keys: frozenset[str], what: str) -> None:
    if set(value) != keys:
        missing = sorted(keys - set(value))
        extra = sorted(set(value) - keys)
        raise _fail(f"{what} fields: missing {missing}, unknown {extra}")


def _int(body: dict[str, Decoded], key: str) -> int:
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(f"field {key!r} is not an integer")
    return value


def _bytes(body: dict[str, Decoded], key: str, size: int | None = None) -> bytes:
    value = body.get(key)
    if not isinstance(value, bytes):
        raise _fail(f"field {key!r} is not bytes")
    if size is not None and len(value) != size:
        raise _fail(f"field {key!r} is not {size} bytes")
    return value


def _str(body: dict[str, Decoded], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise _fail(f"field {key!r} is not a string")
    return value


def _bytes_list(value: Decoded, what: str, size: int | None = None) -> list[bytes]:
    if not isinstance(value, list):
        raise _fail(f"{what} is not a list")
    items: list[bytes] = []
    for item in value:
        if not isinstance(item, bytes) or (size is not None and len(item) != size):
            raise _fail(f"{what} holds a malformed entry")
        items.append(item)
    return items


def _hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


def _kind(value: Decoded) -> str | None:
    kind = value.get("kind") if isinstance(value, dict) else None
    return kind if isinstance(kind, str) else None


# ----------------------------------------------------------------- records
SUBMISSION_FIELDS = frozenset(
    {
        "clipped",
        "commitment",
        "examples",
        "miner",
        "node",
        "quality-ppm",
        "reason",
        "reputation-ppm",
        "reward",
        "score",
        "verdict",
    }
)


@dataclass(frozen=True)
class SubmissionRecord:
    """One submission's verdict as a round block records it.

    Parameters
    ----------
    node : int
        The Flower node that sent the reply (the coordinator's id for it).
    miner, commitment : bytes | None
        From the signed envelope; ``None`` if it never verified.
    examples : int
        The envelope's ``num-examples`` (0 if it never verified).
    reason : Reason | None
        Why it was rejected; ``None`` if accepted.
    quality_ppm, reward : int
        Its score against the aggregate and its pay (0 unless accepted).
    clipped : bool
        Whether the robust stage scaled it down (accepted or not selected only).
    score : int | None
        The committee's agreed score in micro-units (scored chains; None if the
        chain is not scored or most validators could not score it).
    reputation_ppm : int
        The miner's reputation after this round (the one its reward used), for
        the first judged submission of each miner (see ``JUDGED``); 0 otherwise.
    local_dp : LocalDp | None
        The local DP the miner reports in its signed envelope (self-reported;
        ``local-dp``, present only when reported).
    salt : bytes | None
        Commit-reveal rounds: the salt of the seal this reveal opened (``salt``,
        present only then), so anyone can re-hash the envelope against its seal.

    """

    node: int
    miner: bytes | None
    commitment: bytes | None
    examples: int
    reason: Reason | None
    quality_ppm: int = 0
    reward: int = 0
    clipped: bool = False
    score: int | None = None
    reputation_ppm: int = 0
    local_dp: LocalDp | None = None
    salt: bytes | None = None

    @property
    def accepted(self) -> bool:
        return self.reason is None

    @property
    def passed(self) -> bool:
        """Whether it passed every per-submission check (accepted or a repeat)."""
        return self.reason is None or self.reason in PASSED

    def to_value(self) -> dict[str, Decoded]:
        return {
            "clipped": self.clipped,
            "commitment": self.commitment,
            "examples": self.examples,
            "miner": self.miner,
            "node": self.node,
            "quality-ppm": self.quality_ppm,
            "reason": "" if self.reason is None else self.reason.value,
            "reputation-ppm": self.reputation_ppm,
            "reward": self.reward,
            "score": self.score,
            "verdict": ACCEPTED if self.reason is None else REJECTED,
            **({"local-dp": self.local_dp.to_value()} if self.local_dp else {}),
            **({"salt": self.salt} if self.salt is not None else {}),
        }

    def to_json(self) -> dict[str, object]:
        """The record for JSON (keys in full hex; ``reason`` null if accepted)."""
        return {
            "node": self.node,
            "miner": _hex(self.miner),
            "commitment": _hex(self.commitment),
            "examples": self.examples,
            "verdict": ACCEPTED if self.reason is None else REJECTED,
            "reason": None if self.reason is None else self.reason.value,
            "quality-ppm": self.quality_ppm,
            "reward": self.reward,
            "clipped": self.clipped,
            "score": self.score,
            "reputation-ppm": self.reputation_ppm,
            "local-dp": (
                None
                if self.local_dp is None
                else {"epsilon": self.local_dp.epsilon, "delta": self.local_dp.delta}
            ),
            "salt": _hex(self.salt),
        }

    @classmethod
    def from_value(cls, item: Decoded, index: int = 0) -> SubmissionRecord:
        what = f"submission {index}"
        sub = _dict(item, what)
        reported = "local-dp" in sub
        _exact_keys(sub, SUBMISSION_FIELDS | ({"local-dp", "salt"} & set(sub)), what)
        reason = _verdict(sub)
        node = sub["node"]
        if not isinstance(node, int):  # a coordinator's node id: any integer
            raise _fail(f"{what}: node is not an integer")
        examples = _int(sub, "examples")
        quality, reward = _int(sub, "quality-ppm"), _int(sub, "reward")
        if reason in PRE_ENVELOPE:
            if sub["miner"] is not None or sub["commitment"] is not None or examples:
                raise _fail(
                    f"{what}: {reason} yet records envelope fields", Problem.VERDICTS
                )
            miner = commitment = None
        else:
            miner = _bytes(sub, "miner", KEY_SIZE)
            commitment = _bytes(sub, "commitment")
            if len(commitment) not in COMMITMENT_SIZES:
                raise _fail("field 'commitment' is neither a hash nor a G1 point")
            _check_examples(reason, examples, what)
        if reason is None and not 0 <= quality <= PPM:
            raise _fail(f"{what}: quality-ppm {quality} not 0..1e6")
        if reason is None and reward < 0:
            raise _fail(f"{what}: negative reward {reward}", Problem.REWARDS)
        if reason is not None and (quality or reward):
            raise _fail(f"{what}: rejected, yet scored or paid", Problem.REWARDS)
        clipped = sub["clipped"]
        if not isinstance(clipped, bool):
            raise _fail(f"{what}: clipped is not a boolean")
        if clipped and reason not in ROBUST_STAGE:
            raise _fail(f"{what}: {reason} yet clipped", Problem.VERDICTS)
        score = sub["score"]
        if score is not None and type(score) is not int:
            raise _fail(f"{what}: score is not an integer")
        reputation = _int(sub, "reputation-ppm")
        if not 0 <= reputation <= PPM:
            raise _fail(f"{what}: reputation-ppm {reputation} not 0..1e6")
        if reputation and reason not in JUDGED:
            raise _fail(f"{what}: {reason} yet a reputation", Problem.VERDICTS)
        local_dp = None
        if reported:
            if reason in PRE_ENVELOPE:
                raise _fail(f"{what}: {reason} yet local DP", Problem.VERDICTS)
            try:
                local_dp = LocalDp.from_value(sub["local-dp"])
            except ValueError as exc:
                raise _fail(f"{what}: {exc}") from exc
        salt = None
        if "salt" in sub:
            salt = _bytes(sub, "salt", SALT_SIZE)
            if reason in PRE_ENVELOPE or reason in SEALING_FAILED:
                raise _fail(f"{what}: {reason} yet a salt", Problem.VERDICTS)
        return cls(
            node,
            miner,
            commitment,
            examples,
            reason,
            quality,
            reward,
            clipped,
            score,
            reputation,
            local_dp,
            salt,
        )


def _verdict(sub: dict[str, Decoded]) -> Reason | None:
    verdict, reason = _str(sub, "verdict"), _str(sub, "reason")
    if verdict == ACCEPTED and reason == "":
        return None
    if verdict == REJECTED and reason in _REASONS:
        return _REASONS[reason]
    raise _fail(f"unknown verdict {verdict[:40]!r} / {reason[:40]!r}", Problem.VERDICTS)


def _check_examples(reason: Reason | None, examples: int, what: str) -> None:
    in_range = 1 <= examples <= MAX_EXAMPLES
    if reason == Reason.BAD_NUM_EXAMPLES and in_range:
        raise _fail(f"{what}: {reason} with {examples}", Problem.VERDICTS)
    checked = reason not in BEFORE_EXAMPLES and reason != Reason.BAD_NUM_EXAMPLES
    if checked and not in_range:
        raise _fail(f"{what}: examples {examples} outside 1..{MAX_EXAMPLES}")


@dataclass(frozen=True)
class ValidatorFee:
    """A certifier of the previous block and its share of the fee pool."""

    validator: int
    amount: int


def _fees(value: Decoded) -> tuple[ValidatorFee, ...]:
    if not isinstance(value, list):
        raise _fail("validator-fees is not a list")
    fees = []
    for entry in value:
        if not (
            isinstance(entry, list)
            and len(entry) == 2
            and type(entry[0]) is int
            and type(entry[1]) is int
        ):
            raise _fail("malformed validator fee")
        fees.append(ValidatorFee(entry[0], entry[1]))
    return tuple(fees)


# ------------------------------------------------------------------ blocks
_ROUND_FIELDS = frozenset(
    {
        "base",
        "height",
        "kind",
        "minted",
        "model",
        "nonce",
        "previous",
        "registrations",
        "run",
        "submissions",
        "validator-fees",
    }
)


@dataclass(frozen=True)
class RoundBlock:
    """The block one round produced.

    Parameters
    ----------
    height : int
        The round (block 0 is genesis).
    run : int
        The Flower run of the chain.
    previous, base, nonce, model : bytes
        The previous block's hash, the model trained from, the round's nonce and
        the model after the round.
    minted : int
        Token units paid out this round (miners' rewards plus validator fees).
    registrations : tuple[bytes, ...]
        Miner keys registered by this round (open registration).
    submissions : tuple[SubmissionRecord, ...]
        Every reply's verdict, in canonical order (miner key, node).
    validator_fees : tuple[ValidatorFee, ...]
        The previous block's certifiers and their fees.
    privacy : Spent | None
        On a DP chain, the privacy spent up to and including this round (the
        ordered batch's claim, checked by every validator); absent otherwise.
    clipping : ClipStep | None
        Under adaptive DP clipping, the clip norm this round used and the noised
        count of unclipped updates (``dp-clipping``); absent otherwise.
    opening : LinearOpening | None
        On a chain whose aggregate is linear in Pedersen-committed updates, the
        weights, the weighted sum and its blinding (``linear-opening``), for
        ``pot ledger audit``; absent otherwise and in rounds nothing entered.
    sealed : ClosedSeals | None
        On a commit-reveal chain, the round's seals and the validators'
        signatures that closed them (``sealed``); absent otherwise.

    """

    height: int
    run: int
    previous: bytes
    base: bytes
    nonce: bytes
    model: bytes
    minted: int
    registrations: tuple[bytes, ...]
    submissions: tuple[SubmissionRecord, ...]
    validator_fees: tuple[ValidatorFee, ...]
    privacy: Spent | None = None
    clipping: ClipStep | None = None
    opening: LinearOpening | None = None
    sealed: ClosedSeals | None = None

    @property
    def accepted(self) -> tuple[SubmissionRecord, ...]:
        return tuple(s for s in self.submissions if s.accepted)

    def to_value(self) -> dict[str, Decoded]:
        return {
            "base": self.base,
            "height": self.height,
            "kind": ROUND,
            "minted": self.minted,
            "model": self.model,
            "nonce": self.nonce,
            "previous": self.previous,
            "registrations": list(self.registrations),
            "run": self.run,
            "submissions": [s.to_value() for s in self.submissions],
            "validator-fees": [[f.validator, f.amount] for f in self.validator_fees],
            **({"privacy": self.privacy.to_value()} if self.privacy else {}),
            **({"dp-clipping": self.clipping.to_value()} if self.clipping else {}),
            **({"linear-opening": self.opening.to_value()} if self.opening else {}),
            **({"sealed": self.sealed.to_value()} if self.sealed else {}),
        }

    def to_bytes(self) -> bytes:
        return encode(self.to_value())

    def to_json(self) -> dict[str, object]:
        """The block for JSON: every field, byte strings in hex."""
        return {
            "kind": ROUND,
            "height": self.height,
            "run": self.run,
            "previous": self.previous.hex(),
            "base": self.base.hex(),
            "nonce": self.nonce.hex(),
            "model": self.model.hex(),
            "minted": self.minted,
            "registrations": [m.hex() for m in self.registrations],
            "submissions": [s.to_json() for s in self.submissions],
            "validator-fees": [
                {"validator": f.validator, "amount": f.amount}
                for f in self.validator_fees
            ],
            **(
                {
                    "privacy": {
                        "rounds": self.privacy.rounds,
                        "epsilon": self.privacy.epsilon,
                        "epsilon-sampled": self.privacy.epsilon_sampled,
                    }
                }
                if self.privacy
                else {}
            ),
            **(
                {
                    "dp-clipping": {
                        "clip-norm": self.clipping.clip_norm_units / SCALE,
                        "noisy-count": self.clipping.noisy_count,
                    }
                }
                if self.clipping
                else {}
            ),
            **(
                {
                    "linear-opening": {
                        "weights": [list(p) for p in self.opening.weights],
                        "total-entries": len(self.opening.total) // 8,
                        "blinding": self.opening.blinding.to_bytes(32, "big").hex(),
                    }
                }
                if self.opening
                else {}
            ),
            **(
                {
                    "sealed": {
                        "seals": [
                            {
                                "node": x.node,
                                "miner": x.miner.hex(),
                                "seal": x.seal.hex(),
                            }
                            for x in self.sealed.seals.seals
                        ],
                        "closed-by": [i for i, _ in self.sealed.signatures],
                    }
                }
                if self.sealed
                else {}
            ),
        }

    @classmethod
    def from_value(cls, value: Decoded) -> RoundBlock:
        if _kind(value) != ROUND:
            raise _fail("is not a round block")
        body = _dict(value, "round block")
        optional = {"privacy", "dp-clipping", "linear-opening", "sealed"} & set(body)
        _exact_keys(body, _ROUND_FIELDS | optional, "round block")
        try:
            privacy = Spent.from_value(body["privacy"]) if "privacy" in body else None
        except ValueError as exc:
            raise _fail(f"privacy: {exc}") from exc
        try:
            clipping = (
                ClipStep.from_value(body["dp-clipping"])
                if "dp-clipping" in body
                else None
            )
        except ValueError as exc:
            raise _fail(f"dp-clipping: {exc}") from exc
        if clipping is not None and privacy is None:
            raise _fail("dp-clipping without privacy spent")
        try:
            opening = (
                LinearOpening.from_value(body["linear-opening"])
                if "linear-opening" in body
                else None
            )
        except ValueError as exc:
            raise _fail(f"linear-opening: {exc}") from exc
        try:
            sealed = (
                ClosedSeals.from_value(body["sealed"]) if "sealed" in body else None
            )
        except ValueError as exc:
            raise _fail(f"sealed: {exc}") from exc
        submissions = body["submissions"]
        if not isinstance(submissions, list):
            raise _fail("submissions is not a list")
        if len(submissions) > MAX_SUBMISSIONS:
            raise _fail(f"more than {MAX_SUBMISSIONS} submissions")
        records = tuple(
            SubmissionRecord.from_value(item, i) for i, item in enumerate(submissions)
        )
        keys = [(s.miner or b"", s.node) for s in records]
        if keys != sorted(keys):
            raise _fail("submissions are not in canonical order", Problem.VERDICTS)
        if opening is not None and opening.largest_index >= len(records):
            raise _fail("linear-opening names a submission the block lacks")
        return cls(
            height=_int(body, "height"),
            run=_int(body, "run"),
            previous=_bytes(body, "previous"),
            base=_bytes(body, "base"),
            nonce=_bytes(body, "nonce"),
            model=_bytes(body, "model", HASH_SIZE),
            minted=_int(body, "minted"),
            registrations=tuple(_bytes_list(body["registrations"], "registrations")),
            submissions=records,
            validator_fees=_fees(body["validator-fees"]),
            privacy=privacy,
            clipping=clipping,
            opening=opening,
            sealed=sealed,
        )


_GENESIS_FIELDS = frozenset(
    {"height", "kind", "layout", "model", "params", "previous", "version"}
)
_PARAM_FIELDS = frozenset(
    {
        "allowed-miners",
        "emission",
        "norm-bound-units",
        "quorum",
        "registration",
        "robust",
        "run",
        "validator-fee-ppm",
        "validators",
    }
)


@dataclass(frozen=True)
class ArraySpec:
    """One array of the model's layout: name, NumPy dtype string, shape."""

    name: str
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class GenesisBlock:
    """Block 0: the chain's parameters and initial model.

    Parameters
    ----------
    params : Params
        Everything fixed for the chain (committee, bounds, rewards).
    layout : tuple[ArraySpec, ...]
        The model's arrays in canonical order.
    model : bytes
        The initial model's digest.
    previous : bytes
        The all-zero hash (nothing precedes genesis).
    version : int
        The format version (:data:`GENESIS_VERSION`).

    """

    params: Params
    layout: tuple[ArraySpec, ...]
    model: bytes
    previous: bytes
    version: int = GENESIS_VERSION
    height: int = 0

    def to_value(self) -> dict[str, Decoded]:
        return {
            "height": self.height,
            "kind": GENESIS,
            "layout": [[a.name, a.dtype, list(a.shape)] for a in self.layout],
            "model": self.model,
            "params": self.params.to_value(),
            "previous": self.previous,
            "version": self.version,
        }

    def to_bytes(self) -> bytes:
        return encode(self.to_value())

    def to_json(self) -> dict[str, object]:
        """The block for JSON: every field, byte strings in hex."""
        p = self.params
        return {
            "kind": GENESIS,
            "height": self.height,
            "version": self.version,
            "previous": self.previous.hex(),
            "model": self.model.hex(),
            "layout": [
                {"name": a.name, "dtype": a.dtype, "shape": list(a.shape)}
                for a in self.layout
            ],
            "params": {
                "run": p.run,
                "validators": [k.hex() for k in p.validators],
                "quorum": p.quorum,
                "norm-bound-units": p.norm_bound_units,
                "registration": p.registration,
                "allowed-miners": [k.hex() for k in p.allowed_miners],
                "emission": p.emission,
                "validator-fee-ppm": p.validator_fee_ppm,
                "robust": p.robust.to_value(),
                "commitment": p.commitment.value,
                "certificate": p.certifiers.kind.value,
                "commit-reveal": p.commit_reveal,
                **(
                    {
                        "bls": [
                            {
                                "key": k.key.hex(),
                                "proof": k.proof.hex(),
                                "endorsement": k.endorsement.hex(),
                            }
                            for k in p.bls
                        ]
                    }
                    if p.bls
                    else {}
                ),
            },
        }

    @classmethod
    def params_of(cls, value: Decoded) -> Params:
        """The parameters of a body that says it is genesis (checked first)."""
        if _kind(value) != GENESIS:
            raise _fail("block 0 is not a genesis block")
        return _params(_dict(value, "genesis").get("params"))

    @classmethod
    def from_value(cls, value: Decoded) -> GenesisBlock:
        params = cls.params_of(value)
        body = _dict(value, "genesis")
        _exact_keys(body, _GENESIS_FIELDS, "genesis")
        return cls(
            params=params,
            layout=_layout(body["layout"]),
            model=_bytes(body, "model", HASH_SIZE),
            previous=_bytes(body, "previous"),
            version=_int(body, "version"),
            height=_int(body, "height"),
        )


def _params(value: Decoded) -> Params:
    params = _dict(value, "genesis params")
    _exact_keys(
        params,
        _PARAM_FIELDS
        | ({"privacy", "commitment", "bls", "commit-reveal"} & set(params)),
        "genesis params",
    )
    validators = _bytes_list(params["validators"], "validators", KEY_SIZE)
    if not validators or len(set(validators)) != len(validators):
        raise _fail("validators are empty or repeated")
    allowed = _bytes_list(params["allowed-miners"], "allowed-miners")
    if allowed != sorted(allowed):
        raise _fail("allowed-miners are not sorted", Problem.ORDER)
    fields = {
        "run": _int(params, "run"),
        "quorum": _int(params, "quorum"),
        "norm_bound_units": _int(params, "norm-bound-units"),
        "registration": _str(params, "registration"),
        "emission": _int(params, "emission"),
        "validator_fee_ppm": _int(params, "validator-fee-ppm"),
    }
    try:  # types are checked: what Params refuses now is a value out of range
        return Params(
            validators=tuple(validators),
            allowed_miners=tuple(allowed),
            robust=RobustConfig.from_value(params["robust"]),
            privacy=recorded_privacy(params),
            commitment=recorded_commitment(params),
            bls=recorded_bls(params),
            commit_reveal=recorded_commit_reveal(params),
            **fields,  # type: ignore[arg-type]
        )
    except ValueError as exc:
        raise _fail(f"genesis params invalid: {exc}") from exc


def _layout(value: Decoded) -> tuple[ArraySpec, ...]:
    if not isinstance(value, list) or not value:
        raise _fail("layout is not a non-empty list")
    specs: list[ArraySpec] = []
    for entry in value:
        if not (
            isinstance(entry, list)
            and len(entry) == 3
            and isinstance(entry[0], str)
            and isinstance(entry[1], str)
            and isinstance(entry[2], list)
            and all(type(d) is int and d >= 0 for d in entry[2])
        ):
            raise _fail("layout entry is not [name, dtype, shape]")
        if any(s.name == entry[0] for s in specs):
            raise _fail(f"layout names {entry[0]!r} twice")
        specs.append(ArraySpec(entry[0], entry[1], tuple(entry[2])))  # type: ignore[arg-type]
    return tuple(specs)


Block = GenesisBlock | RoundBlock


def parse_block(body: bytes) -> Block:
    """A stored body as its typed block.

    Raises
    ------
    BlockFormatError
        If the bytes are not canonical or not a well-formed block.

    """
    try:
        value = decode(body)
    except DecodeError as exc:
        raise _fail(f"body is not canonical: {exc}") from exc
    if _kind(value) == GENESIS:
        return GenesisBlock.from_value(value)
    return RoundBlock.from_value(value)


def parse_round(body: bytes) -> RoundBlock:
    """A stored body that must be a round block (see :func:`parse_block`)."""
    block = parse_block(body)
    if not isinstance(block, RoundBlock):
        raise _fail("is not a round block")
    return block

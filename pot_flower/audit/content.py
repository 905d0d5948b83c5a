"""A block body's fields, typed and checked one by one (:class:`BadBlock` if not)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from pot_flower.audit.report import HASH_SIZE, KEY_SIZE, BadBlock, Failure
from pot_flower.audit.rows import storage_class
from pot_flower.encoding import Decoded
from pot_flower.protocol.block import Certificate, CertificateError
from pot_flower.protocol.execution import (
    ACCEPTED,
    MAX_EXAMPLES,
    REJECTED,
    Params,
    Reason,
)
from pot_flower.protocol.rewards import PPM


# ----------------------------------------------------------- typed accessors
def _dict(value: Decoded, what: str) -> dict[str, Decoded]:
    if not isinstance(value, dict):
        raise BadBlock(Failure.BAD_CONTENT, f"{what} is not a dictionary")
    return value


def _exact_keys(value: dict[str, Decoded], keys: frozenset[str], what: str) -> None:
    if set(value) != keys:
        missing = sorted(keys - set(value))
        extra = sorted(set(value) - keys)
        raise BadBlock(
            Failure.BAD_CONTENT, f"{what} fields: missing {missing}, unknown {extra}"
        )


def _int(body: dict[str, Decoded], key: str) -> int:
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadBlock(Failure.BAD_CONTENT, f"field {key!r} is not an integer")
    return value


def _bytes(body: dict[str, Decoded], key: str, size: int | None = None) -> bytes:
    value = body.get(key)
    if not isinstance(value, bytes):
        raise BadBlock(Failure.BAD_CONTENT, f"field {key!r} is not bytes")
    if size is not None and len(value) != size:
        raise BadBlock(Failure.BAD_CONTENT, f"field {key!r} is not {size} bytes")
    return value


def _str(body: dict[str, Decoded], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise BadBlock(Failure.BAD_CONTENT, f"field {key!r} is not a string")
    return value


def _bytes_list(value: Decoded, what: str, size: int | None = None) -> list[bytes]:
    if not isinstance(value, list):
        raise BadBlock(Failure.BAD_CONTENT, f"{what} is not a list")
    items: list[bytes] = []
    for item in value:
        if not isinstance(item, bytes) or (size is not None and len(item) != size):
            raise BadBlock(Failure.BAD_CONTENT, f"{what} holds a malformed entry")
        items.append(item)
    return items


# --------------------------------------------------------------- block shapes
_GENESIS_FIELDS = frozenset(
    {"height", "kind", "layout", "model", "params", "previous", "version"}
)
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
_PARAM_FIELDS = frozenset(
    {
        "allowed-miners",
        "emission",
        "norm-bound-units",
        "quorum",
        "registration",
        "run",
        "validator-fee-ppm",
        "validators",
    }
)
_SUBMISSION_FIELDS = frozenset(
    {
        "commitment",
        "examples",
        "miner",
        "node",
        "quality-ppm",
        "reason",
        "reward",
        "verdict",
    }
)
# Rejected before the envelope's signature verified: no miner, commitment, count.
_PRE_ENVELOPE = frozenset(
    {Reason.MISSING_SIGNATURE, Reason.MALFORMED_ENVELOPE, Reason.BAD_SIGNATURE}
)
# Rejected before num-examples was checked: any signed count may be recorded.
_BEFORE_EXAMPLES = frozenset(
    {
        Reason.UNKNOWN_MINER,
        Reason.WRONG_RUN,
        Reason.WRONG_ROUND,
        Reason.WRONG_NONCE,
        Reason.WRONG_NODE,
        Reason.BASE_DIGEST_MISMATCH,
    }
)
# Rejections that do not register a miner (execution's registration rule).
_NOT_REGISTERING = frozenset(
    {Reason.UNKNOWN_MINER, Reason.WRONG_RUN, Reason.WRONG_ROUND, Reason.WRONG_NONCE}
)
# Submissions that passed every per-submission check.
_PASSED = frozenset({Reason.DUPLICATE_SUBMISSION, Reason.COPIED_UPDATE})
_REASONS = {r.value: r for r in Reason}


@dataclass(frozen=True)
class _Submission:
    """One verdict as recorded, type-checked (``reason`` None: accepted)."""

    node: int
    miner: bytes | None
    commitment: bytes | None
    examples: int
    quality: int
    reward: int
    reason: Reason | None

    @property
    def passed(self) -> bool:
        return self.reason is None or self.reason in _PASSED


def _verdict(sub: dict[str, Decoded]) -> Reason | None:
    verdict, reason = _str(sub, "verdict"), _str(sub, "reason")
    if verdict == ACCEPTED and reason == "":
        return None
    if verdict == REJECTED and reason in _REASONS:
        return _REASONS[reason]
    raise BadBlock(
        Failure.BAD_VERDICTS, f"unknown verdict {verdict[:40]!r} / {reason[:40]!r}"
    )


def _submission(item: Decoded, index: int) -> _Submission:
    what = f"submission {index}"
    sub = _dict(item, what)
    _exact_keys(sub, _SUBMISSION_FIELDS, what)
    reason = _verdict(sub)
    node = sub["node"]
    if not isinstance(node, int):  # a coordinator's node id: any integer
        raise BadBlock(Failure.BAD_CONTENT, f"{what}: node is not an integer")
    examples, quality, reward = (
        _int(sub, "examples"),
        _int(sub, "quality-ppm"),
        _int(sub, "reward"),
    )
    if reason in _PRE_ENVELOPE:
        if sub["miner"] is not None or sub["commitment"] is not None or examples:
            raise BadBlock(
                Failure.BAD_VERDICTS, f"{what}: {reason} yet records envelope fields"
            )
        miner = commitment = None
    else:
        miner = _bytes(sub, "miner", KEY_SIZE)
        commitment = _bytes(sub, "commitment", HASH_SIZE)
        _check_examples(reason, examples, what)
    if reason is None and not 0 <= quality <= PPM:
        raise BadBlock(Failure.BAD_CONTENT, f"{what}: quality-ppm {quality} not 0..1e6")
    if reason is None and reward < 0:
        raise BadBlock(Failure.BAD_REWARDS, f"{what}: negative reward {reward}")
    if reason is not None and (quality or reward):
        raise BadBlock(Failure.BAD_REWARDS, f"{what}: rejected, yet scored or paid")
    return _Submission(node, miner, commitment, examples, quality, reward, reason)


def _check_examples(reason: Reason | None, examples: int, what: str) -> None:
    in_range = 1 <= examples <= MAX_EXAMPLES
    if reason == Reason.BAD_NUM_EXAMPLES and in_range:
        raise BadBlock(Failure.BAD_VERDICTS, f"{what}: {reason} with {examples}")
    if (
        reason not in _BEFORE_EXAMPLES
        and reason != Reason.BAD_NUM_EXAMPLES
        and not in_range
    ):
        raise BadBlock(
            Failure.BAD_CONTENT,
            f"{what}: examples {examples} outside 1..{MAX_EXAMPLES}",
        )


def _params(value: Decoded) -> Params:
    params = _dict(value, "genesis params")
    _exact_keys(params, _PARAM_FIELDS, "genesis params")
    validators = _bytes_list(params["validators"], "validators", KEY_SIZE)
    if not validators or len(set(validators)) != len(validators):
        raise BadBlock(Failure.BAD_CONTENT, "validators are empty or repeated")
    allowed = _bytes_list(params["allowed-miners"], "allowed-miners")
    if allowed != sorted(allowed):
        raise BadBlock(Failure.NOT_CANONICAL, "allowed-miners are not sorted")
    try:
        return Params(
            run=_int(params, "run"),
            validators=tuple(validators),
            quorum=_int(params, "quorum"),
            norm_bound_units=_int(params, "norm-bound-units"),
            registration=_str(params, "registration"),
            allowed_miners=tuple(allowed),
            emission=_int(params, "emission"),
            validator_fee_ppm=_int(params, "validator-fee-ppm"),
        )
    except ValueError as exc:
        raise BadBlock(Failure.BAD_CONTENT, f"genesis params invalid: {exc}") from exc


def _layout(value: Decoded) -> None:
    if not isinstance(value, list) or not value:
        raise BadBlock(Failure.BAD_CONTENT, "layout is not a non-empty list")
    names: set[str] = set()
    for entry in value:
        if not (
            isinstance(entry, list)
            and len(entry) == 3
            and isinstance(entry[0], str)
            and isinstance(entry[1], str)
            and isinstance(entry[2], list)
            and all(type(d) is int and d >= 0 for d in entry[2])
        ):
            raise BadBlock(
                Failure.BAD_CONTENT, "layout entry is not [name, dtype, shape]"
            )
        if entry[0] in names:
            raise BadBlock(Failure.BAD_CONTENT, f"layout names {entry[0]!r} twice")
        names.add(entry[0])


def _fees(value: Decoded) -> tuple[list[int], list[int]]:
    if not isinstance(value, list):
        raise BadBlock(Failure.BAD_CONTENT, "validator-fees is not a list")
    signers: list[int] = []
    shares: list[int] = []
    for entry in value:
        if not (
            isinstance(entry, list)
            and len(entry) == 2
            and type(entry[0]) is int
            and type(entry[1]) is int
        ):
            raise BadBlock(Failure.BAD_CONTENT, "malformed validator fee")
        signers.append(entry[0])
        shares.append(entry[1])
    return signers, shares


def _certificate(data: object, height: int, digest: bytes) -> Certificate:
    if data is None:
        raise BadBlock(Failure.UNCERTIFIED, "has no committee certificate")
    if not isinstance(data, bytes):
        raise BadBlock(
            Failure.MALFORMED_ROW,
            f"certificate is {storage_class(data)}, not a BLOB",
        )
    try:
        cert = Certificate.from_bytes(data)
    except CertificateError as exc:
        raise BadBlock(Failure.BAD_CERTIFICATE, f"certificate invalid: {exc}") from exc
    if type(cert.height) is not int or cert.height != height or cert.block != digest:
        raise BadBlock(
            Failure.BAD_CERTIFICATE, "certificate invalid: certifies another block"
        )
    return cert


def _check_duplicates(subs: list[_Submission]) -> None:
    """One passing submission per miner; identical updates all marked copied."""
    seen: set[bytes | None] = set()
    firsts: list[_Submission] = []
    for s in subs:
        if not s.passed:
            continue
        if s.miner in seen:
            if s.reason != Reason.DUPLICATE_SUBMISSION:
                raise BadBlock(Failure.BAD_VERDICTS, "a miner is paid twice in a round")
            continue
        if s.reason == Reason.DUPLICATE_SUBMISSION:
            raise BadBlock(Failure.BAD_VERDICTS, "a first submission marked duplicate")
        seen.add(s.miner)
        firsts.append(s)
    counts = Counter(s.commitment for s in firsts)
    for s in firsts:
        if (s.reason == Reason.COPIED_UPDATE) != (counts[s.commitment] > 1):
            raise BadBlock(
                Failure.BAD_VERDICTS, "copied-update verdicts are inconsistent"
            )

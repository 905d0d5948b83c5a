"""Why a submission was rejected: stable codes stored in the ledger, and their text."""

from __future__ import annotations

from enum import StrEnum

from pot_flower.protocol.params import MAX_EXAMPLES


class Reason(StrEnum):
    """Stable reason codes for rejected submissions (they are stored in the ledger)."""

    MISSING_SIGNATURE = "missing-signature"
    MALFORMED_ENVELOPE = "malformed-envelope"
    BAD_SIGNATURE = "bad-signature"
    UNKNOWN_MINER = "unknown-miner"
    WRONG_RUN = "wrong-run"
    WRONG_ROUND = "wrong-round"
    WRONG_NONCE = "wrong-nonce"
    WRONG_NODE = "wrong-node"
    BASE_DIGEST_MISMATCH = "base-digest-mismatch"
    BAD_NUM_EXAMPLES = "bad-num-examples"
    MALFORMED_UPDATE = "malformed-update"
    WRONG_KEYS = "wrong-keys"
    WRONG_SHAPE = "wrong-shape"
    WRONG_DTYPE = "wrong-dtype"
    NON_FINITE = "non-finite"
    NORM_ABOVE_BOUND = "norm-above-bound"
    COMMITMENT_MISMATCH = "commitment-mismatch"
    DUPLICATE_SUBMISSION = "duplicate-submission"
    COPIED_UPDATE = "copied-update"
    NOT_SELECTED = "not-selected"
    NEAR_COPY = "near-copy"
    LOW_SCORE = "low-score"
    NOT_SEALED = "not-sealed"
    SEAL_MISMATCH = "seal-mismatch"
    NOT_REVEALED = "not-revealed"


REASON_TEXT = {
    Reason.MISSING_SIGNATURE: "no signed PoT envelope in the reply",
    Reason.MALFORMED_ENVELOPE: "the envelope is not a canonical PoT envelope",
    Reason.BAD_SIGNATURE: "the signature does not verify under the miner's key",
    Reason.UNKNOWN_MINER: "the miner is not registered with the committee",
    Reason.WRONG_RUN: "the envelope names another run",
    Reason.WRONG_ROUND: "the envelope names another round (stale or replayed)",
    Reason.WRONG_NONCE: "the envelope carries another round's nonce",
    Reason.WRONG_NODE: "the envelope names another node than the one that sent it",
    Reason.BASE_DIGEST_MISMATCH: "the update was not trained from the global model",
    Reason.BAD_NUM_EXAMPLES: f"num-examples outside 1..{MAX_EXAMPLES}",
    Reason.MALFORMED_UPDATE: "the returned arrays are missing or undecodable",
    Reason.WRONG_KEYS: "the returned arrays have other names than the model's",
    Reason.WRONG_SHAPE: "an array's shape differs from the model's",
    Reason.WRONG_DTYPE: "an array's dtype differs from the model's",
    Reason.NON_FINITE: "the update contains NaN or infinity",
    Reason.NORM_ABOVE_BOUND: "the update's L2 norm exceeds the bound",
    Reason.COMMITMENT_MISMATCH: "the arrays do not match the signed commitment",
    Reason.DUPLICATE_SUBMISSION: "the miner already submitted in this round",
    Reason.COPIED_UPDATE: "the same update was submitted by another miner",
    Reason.NEAR_COPY: "another miner's update is within the copy tolerance of it",
    Reason.LOW_SCORE: "the committee's agreed score is below the chain's threshold",
    Reason.NOT_SELECTED: "the robust aggregator (Krum, Multi-Krum) chose other updates",
    Reason.NOT_SEALED: "commit-reveal: the node sealed nothing before the seals closed",
    Reason.SEAL_MISMATCH: (
        "commit-reveal: the revealed envelope is not the one its node's miner sealed"
    ),
    Reason.NOT_REVEALED: "commit-reveal: the miner sealed but never revealed",
}

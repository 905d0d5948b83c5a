"""What a verified ledger says round by round, as plain series to plot.

Pure reading: the typed blocks (:mod:`pot_flower.protocol.block`) of a ledger
that :func:`~pot_flower.audit.audit_ledger` verified, turned into per-round
counts and per-miner series. Miners are keyed by their full key in hex and drawn
under its shortest unambiguous prefix (:func:`short_labels`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pot_flower.audit.rows import read_blocks
from pot_flower.protocol.block import GenesisBlock, RoundBlock, parse_block

PPM = 1_000_000


def miner_label(key: bytes) -> str:
    """A miner's series key: its full key in hex (shortened for display only)."""
    return key.hex()


def short_labels(labels: Iterable[str]) -> dict[str, str]:
    """Each full hex key -> the shortest of 8, 16 or 64 digits naming it alone.

    Keys are ground cheaply to a chosen 8-digit prefix: a miner sharing an
    honest one's prefix must not be drawn as that miner.
    """
    labels = list(labels)
    for width in (8, 16, 64):
        if len({label[:width] for label in labels}) == len(set(labels)):
            return {label: label[:width] for label in labels}
    return {label: label for label in labels}


@dataclass
class LedgerSeries:
    """A ledger's rounds as series (index ``i`` is round ``rounds[i]``)."""

    rounds: list[int] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)
    # Accepted but paid nothing (quality 0: it worked against the others).
    unpaid: list[int] = field(default_factory=list)
    rejected: list[Counter[str]] = field(default_factory=list)
    clipped: list[int] = field(default_factory=list)
    minted: list[int] = field(default_factory=list)
    # Per miner label: cumulative balance after each round.
    miner_balance: dict[str, list[int]] = field(default_factory=dict)
    # Per validator index: cumulative fees after each round.
    validator_balance: dict[int, list[int]] = field(default_factory=dict)
    # Per miner label: quality (ppm) per round, None where it did not submit or
    # was rejected.
    quality: dict[str, list[int | None]] = field(default_factory=dict)
    # Per miner label: the committee's agreed score (micro-units) per round, on
    # scored chains.
    score: dict[str, list[int | None]] = field(default_factory=dict)
    # Central DP: epsilon spent after each round (None on rounds without DP).
    epsilon: list[float | None] = field(default_factory=list)
    # Local DP: each miner's self-reported epsilon per round.
    local_epsilon: dict[str, list[float | None]] = field(default_factory=dict)
    delta: float | None = None
    miner_nodes: dict[str, set[int]] = field(default_factory=dict)

    @property
    def reasons(self) -> list[str]:
        """Every rejection reason that occurs, most frequent first."""
        total: Counter[str] = Counter()
        for counts in self.rejected:
            total.update(counts)
        return [reason for reason, _ in total.most_common()]


def _extend(series: dict[Any, list[Any]], label: object, length: int) -> list[Any]:
    """``series[label]``, padded with None up to ``length`` rounds."""
    values = series.setdefault(label, [])
    values.extend([None] * (length - len(values)))
    return values


def ledger_series(path: Path, up_to: int | None = None) -> LedgerSeries:
    """Read the series of the ledger at ``path`` (verify it first).

    Blocks up to height ``up_to`` (all by default: pass the verified height).
    """
    out = LedgerSeries()
    miners: Counter[str] = Counter()
    validators: Counter[int] = Counter()
    for stored in read_blocks(path):
        if up_to is not None and stored.height > up_to:
            break
        block = parse_block(stored.body)
        if isinstance(block, GenesisBlock):
            privacy = block.params.privacy
            out.delta = privacy.delta / 1e12 if privacy.on else None
            continue
        if not isinstance(block, RoundBlock):
            continue
        n = len(out.rounds)
        out.rounds.append(block.height)
        out.minted.append(block.minted)
        rejected: Counter[str] = Counter()
        accepted = clipped = unpaid = 0
        for s in block.submissions:
            if s.reason is None:
                accepted += 1
                unpaid += s.reward == 0
            else:
                rejected[s.reason.value] += 1
            clipped += s.clipped
            if s.miner is None:
                continue
            label = miner_label(s.miner)
            out.miner_nodes.setdefault(label, set()).add(s.node)
            miners[label] += s.reward
            if s.reason is None:
                _extend(out.quality, label, n + 1)[n] = s.quality_ppm
            if s.score is not None:
                _extend(out.score, label, n + 1)[n] = s.score
            if s.local_dp is not None:
                _extend(out.local_epsilon, label, n + 1)[n] = (
                    s.local_dp.epsilon_micro / PPM
                )
        for fee in block.validator_fees:
            validators[fee.validator] += fee.amount
        out.accepted.append(accepted)
        out.unpaid.append(unpaid)
        out.rejected.append(rejected)
        out.clipped.append(clipped)
        out.epsilon.append(
            block.privacy.epsilon_micro / PPM if block.privacy is not None else None
        )
        for label, amount in miners.items():
            _extend(out.miner_balance, label, n + 1)[n] = amount
        for index, amount in validators.items():
            _extend(out.validator_balance, index, n + 1)[n] = amount
    length = len(out.rounds)
    for table in (out.quality, out.score, out.local_epsilon):
        for label in table:
            _extend(table, label, length)
    for balances in (out.miner_balance, out.validator_balance):
        _pad_balances(balances, length)
    return out


def _pad_balances(balances: dict[Any, list[Any]], length: int) -> None:
    """A balance before an account's first pay is 0, not unknown."""
    for key in balances:
        padded = _extend(balances, key, length)
        balances[key] = [0 if v is None else v for v in padded]

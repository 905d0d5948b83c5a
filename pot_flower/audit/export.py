"""Machine-readable read-outs of a verified ledger: blocks as JSON lines, balances.

Run them after :func:`~pot_flower.audit.audit_ledger` says ``ok``: they read the
same rows and render the typed blocks (:mod:`pot_flower.protocol.block`), so a
script sees exactly what the audit checked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from pot_flower.audit.report import AuditReport
from pot_flower.audit.rows import read_blocks
from pot_flower.protocol.block import RoundBlock, parse_block
from pot_flower.protocol.certificate import Certificate

BLOCKS_FILE = "blocks.jsonl"


def block_lines(path: Path) -> Iterator[str]:
    """One JSON object per stored block, by height: the block, its hash, signers."""
    for stored in read_blocks(path):
        value = parse_block(stored.body).to_json()
        value["hash"] = stored.hash.hex()
        value["certified-by"] = (
            Certificate.from_bytes(stored.certificate).signers
            if stored.certificate
            else []
        )
        yield json.dumps(value, sort_keys=True)


def export_blocks(path: Path, directory: Path) -> Path:
    """Write :func:`block_lines` to ``directory/blocks.jsonl``; the file written."""
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / BLOCKS_FILE
    partial = out.with_suffix(".partial")
    with partial.open("w") as f:
        for line in block_lines(path):
            f.write(line + "\n")
    partial.replace(out)  # a reader never sees half an export
    return out


def balances(path: Path, report: AuditReport) -> dict[str, object]:
    """Every account's balance in full keys, with the Flower nodes each miner used."""
    nodes: dict[bytes, set[int]] = {}
    for stored in read_blocks(path):
        block = parse_block(stored.body)
        if isinstance(block, RoundBlock):
            for s in block.submissions:
                if s.miner is not None:
                    nodes.setdefault(s.miner, set()).add(s.node)
    miners = sorted(report.miner_balances.items(), key=lambda kv: (-kv[1], kv[0]))
    return {
        "rounds": report.blocks - 1,
        "minted": report.minted,
        "trust": report.trust(),
        "miners": [
            {"key": key.hex(), "balance": amount, "nodes": sorted(nodes.get(key, ()))}
            for key, amount in miners
        ],
        "validators": [
            {
                "index": index,
                "key": report.validators[index].hex(),
                "balance": amount,
            }
            for index, amount in sorted(report.validator_balances.items())
        ],
    }

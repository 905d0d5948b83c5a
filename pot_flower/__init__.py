"""pot-flower: Proof of Training for Flower, with a PBFT committee of validators.

The public API, importable from here::

    from pot_flower import PoTStrategy, pot_mod, PoTClientApp, audit_ledger

Names load on first use, so ``import pot_flower.consensus`` (a validator, the fault
simulator) does not pull in Flower.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "PoTStrategy": "pot_flower.strategies.pot_strategy",
    "RoundReport": "pot_flower.strategies.pot_strategy",
    "pot_mod": "pot_flower.clients.pot_mod",
    "PoTClientApp": "pot_flower.clients.wrap",
    "with_pot": "pot_flower.clients.wrap",
    "Keystore": "pot_flower.keystore",
    "Committee": "pot_flower.committee.base",
    "CertifiedRound": "pot_flower.committee.base",
    "EmbeddedCommittee": "pot_flower.committee.embedded",
    "RemoteCommittee": "pot_flower.committee.remote",
    "audit_ledger": "pot_flower.audit",
    "AuditReport": "pot_flower.audit",
    "Pins": "pot_flower.audit",
    "RoundBlock": "pot_flower.protocol.block",
    "GenesisBlock": "pot_flower.protocol.block",
    "SubmissionRecord": "pot_flower.protocol.block",
    "parse_block": "pot_flower.protocol.block",
    "Reason": "pot_flower.protocol.reasons",
}
__all__ = [
    "AuditReport",
    "CertifiedRound",
    "Committee",
    "EmbeddedCommittee",
    "GenesisBlock",
    "Keystore",
    "Pins",
    "PoTClientApp",
    "PoTStrategy",
    "Reason",
    "RemoteCommittee",
    "RoundBlock",
    "RoundReport",
    "SubmissionRecord",
    "__version__",
    "audit_ledger",
    "parse_block",
    "pot_mod",
    "with_pot",
]

if TYPE_CHECKING:
    from pot_flower.audit import AuditReport, Pins, audit_ledger
    from pot_flower.clients.pot_mod import pot_mod
    from pot_flower.clients.wrap import PoTClientApp, with_pot
    from pot_flower.committee.base import CertifiedRound, Committee
    from pot_flower.committee.embedded import EmbeddedCommittee
    from pot_flower.committee.remote import RemoteCommittee
    from pot_flower.keystore import Keystore
    from pot_flower.protocol.block import (
        GenesisBlock,
        RoundBlock,
        SubmissionRecord,
        parse_block,
    )
    from pot_flower.protocol.reasons import Reason
    from pot_flower.strategies.pot_strategy import PoTStrategy, RoundReport


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pot_flower' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

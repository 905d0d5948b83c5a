"""PBFT consensus as a pure state machine (no I/O, no flwr, no grpc).

The names below load on first use: a verifier that needs only the quorum
arithmetic (:mod:`~pot_flower.consensus.quorum`) does not pay for the replica.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Application": "pot_flower.consensus.application",
    "HashChainApp": "pot_flower.consensus.application",
    "CommitteeConfig": "pot_flower.consensus.config",
    "DurableState": "pot_flower.consensus.durable",
    "Replica": "pot_flower.consensus.replica",
    "Requester": "pot_flower.consensus.requester",
}
__all__ = [
    "Application",
    "CommitteeConfig",
    "DurableState",
    "HashChainApp",
    "Replica",
    "Requester",
]

if TYPE_CHECKING:
    from pot_flower.consensus.application import Application, HashChainApp
    from pot_flower.consensus.config import CommitteeConfig
    from pot_flower.consensus.durable import DurableState
    from pot_flower.consensus.replica import Replica
    from pot_flower.consensus.requester import Requester


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pot_flower.consensus' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

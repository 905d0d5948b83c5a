"""PBFT consensus as a pure state machine (no I/O, no flwr, no grpc)."""

from pot_flower.consensus.application import Application, HashChainApp
from pot_flower.consensus.config import CommitteeConfig
from pot_flower.consensus.durable import DurableState
from pot_flower.consensus.replica import Replica
from pot_flower.consensus.requester import Requester

__all__ = [
    "Application",
    "CommitteeConfig",
    "DurableState",
    "HashChainApp",
    "Replica",
    "Requester",
]

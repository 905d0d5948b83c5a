"""pot-flower: Proof of Training for Flower, with a PBFT committee of validators."""

__version__ = "0.1.0"

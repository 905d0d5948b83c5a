"""The Proof-of-Training protocol core: what every validator computes, bit for bit.

Pure functions and dataclasses, no I/O and no Flower: model encoding, fixed-point
updates, signed envelopes, round execution with verdicts, rewards and blocks.
"""

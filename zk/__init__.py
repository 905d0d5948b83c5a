"""Commitments, signatures and proofs: pure cryptography, no Flower imports."""

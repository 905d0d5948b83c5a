"""Proof of Training quickstart: a small CNN on Fashion-MNIST."""

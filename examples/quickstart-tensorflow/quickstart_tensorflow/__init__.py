"""Proof of Training with Keras miners (Fashion-MNIST)."""

"""Local DP on miners: Opacus DP-SGD on MNIST under Proof of Training."""

#!/usr/bin/env bash
# The main job: a Proof-of-Training federation with `flwr run` — 10 simulated miners
# train a small CNN on Fashion-MNIST (non-IID), an embedded committee of 4 validators
# checks and certifies every round, and each validator's ledger is verified at the end.
# Overrides: ROUNDS (default 5), NODES (default 10).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
source "$(dirname "${BASH_SOURCE[0]}")/datasets.sh"
ensure_fashion_mnist
out="$root/runs/quickstart-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
python -m pot_flower.ops.superlink examples/quickstart-pytorch --home "$out/flwr-home" \
    --nodes "${NODES:-10}" \
    -c num-server-rounds="${ROUNDS:-5}" -c pot-ledger-dir="$out/ledger" \
    -c pot-keystore="$out/keystore" "$@"
pot ledger show "$out/ledger/validator-0"
for v in "$out"/ledger/validator-*; do pot ledger verify "$v"; done
pot rewards "$out/ledger/validator-0"

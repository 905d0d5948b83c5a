#!/usr/bin/env bash
# Regenerate the README's `pot report` pictures (docs/report/): the quickstart with
# 6 miners, 2 of them sending inflated sign flips, under pot-robust=recommended.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
source "$root/scripts/datasets.sh"
ensure_fashion_mnist
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python -m pot_flower.ops.superlink examples/quickstart-pytorch --home "$work/flwr-home" \
    --nodes 6 -c num-server-rounds=3 -c pot-demo-attack=inflate -c pot-demo-byzantine=2 \
    -c pot-robust=recommended -c pot-ledger-dir="$work/ledger" \
    -c pot-keystore="$work/keys" > "$work/run.log" 2>&1 || { tail -50 "$work/run.log"; exit 1; }
pot report "$work/ledger/validator-0" --out "$work/report"
mkdir -p docs/report
cp "$work"/report/*.png docs/report/

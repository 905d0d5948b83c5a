#!/usr/bin/env bash
# The chaos soak, short (CI): 12 rounds on 4 validator processes with 5 % of their
# messages dropped and 5 % delayed, one validator killed and restarted, the
# coordinator killed once and resumed, 20 % of miners out each round. Exits non-zero
# if an invariant fails (a round certified twice or lost, replicas that differ, a
# ledger that does not verify, a validator that does not recover). About 1 minute
# on a 2-core machine. Usage: bash scripts/soak_ci.sh [benchmarks/soak.py options]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
python benchmarks/soak.py --rounds 12 --kills 1 --coordinator-kills 1 \
    --drop 0.05 --delay 0.05 --dropout 0.2 --seed "${SOAK_SEED:-1}" \
    --max-wall 150 --out "${SOAK_OUT:-$out/soak_ci.json}" "$@"

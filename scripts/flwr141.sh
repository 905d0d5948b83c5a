#!/usr/bin/env bash
# The suite on flwr 1.41.0, the oldest Flower pot-flower allows (flwr>=1.41): the
# project's venv (tested pin 1.42.0) with flwr 1.41.0 laid over it on PYTHONPATH,
# which every process the tests start (SuperLink, simulation, Ray workers) inherits.
# Usage: bash scripts/flwr141.sh [pytest arguments]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
overlay="$PWD/.venv/overlay-flwr-1.41.0"
if [ ! -f "$overlay/flwr-1.41.0.dist-info/METADATA" ]; then
    rm -rf "$overlay"
    python -m pip install --quiet --no-deps --target "$overlay" flwr==1.41.0
fi
export PYTHONPATH="$overlay${PYTHONPATH:+:$PYTHONPATH}"
python -c 'import flwr, importlib.metadata as m; v = m.version("flwr"); assert v == "1.41.0" and flwr.__file__.startswith("'"$overlay"'"), v; print("flwr", v, "from", flwr.__file__)'
python -m pytest "$@"

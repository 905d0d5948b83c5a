#!/usr/bin/env bash
# Execute every example notebook from top to bottom (nbclient through pytest);
# prints each notebook's wall time. Usage: bash scripts/notebooks.sh [pytest args]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
python -m pytest examples/notebooks -p no:cacheprovider "$@"

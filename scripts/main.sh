#!/usr/bin/env bash
# The main job. Today: the PBFT committee under the full fault mix (1000 seeded runs
# of 4 validators, one Byzantine or crashing). The PoT federation on Fashion-MNIST
# takes this place once the Flower strategy lands.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
pot consensus simulate --validators 4 --runs "${RUNS:-1000}" "$@"

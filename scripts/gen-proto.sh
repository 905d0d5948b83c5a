#!/usr/bin/env bash
# Regenerate pot_flower/transport/pot_pb2*.py from pot.proto (grpcio-tools, dev extra).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. \
    pot_flower/transport/pot.proto

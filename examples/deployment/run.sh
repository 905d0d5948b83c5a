#!/usr/bin/env bash
# Flower Deployment Engine + a PoT committee of 4 validator processes, all on loopback:
# flower-superlink, NODES flower-supernodes (one per miner), `pot committee up --local 4`,
# then `flwr run` of the quickstart against the remote committee, and every
# validator's ledger verified. Every process this script starts is stopped by PID.
#   bash examples/deployment/run.sh            # ROUNDS=2 NODES=2 by default
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../../scripts/bootstrap.sh"          # .venv with pot-flower, flwr, torch
rounds=${ROUNDS:-2}
nodes=${NODES:-2}
work="$root/runs/deployment-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$work"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
port() { python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

echo "== committee: 4 validators (logs in $work/committee/validator-*/validator.log)"
pot committee up --local 4 --dir "$work/committee" > "$work/committee.out" 2>&1 &
pids+=($!)
until grep -q "committee of 4" "$work/committee.out"; do sleep 0.5; done
cat "$work/committee.out"

echo "== flower-superlink and $nodes flower-supernodes"
export FLWR_HOME="$work/flwr-home" FLWR_DISABLE_UPDATE_CHECK=1 FLWR_TELEMETRY_ENABLED=0
link=$(port)   # one HTTP port serves the Fleet, Control and Runtime APIs
flower-superlink --insecure --disable-runtime-dependency-installation \
    --host 127.0.0.1 --port "$link" --database "$work/superlink.db" \
    > "$work/superlink.log" 2>&1 &
pids+=($!)
for i in $(seq 0 $((nodes - 1))); do
    flower-supernode --insecure --superlink "127.0.0.1:$link" --port "$(port)" \
        --node-config "partition-id=$i num-partitions=$nodes" \
        > "$work/supernode-$i.log" 2>&1 &
    pids+=($!)
done
mkdir -p "$FLWR_HOME"
cat > "$FLWR_HOME/config.toml" <<TOML
[superlink]
default = "deploy"

[superlink.deploy]
address = "127.0.0.1:$link"
insecure = true
TOML
# The SuperLink takes a few seconds to start (longer on a busy machine): wait for
# its port rather than a fixed time.
python - "$link" <<'PY'
import socket, sys, time
deadline = time.monotonic() + 60
while True:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit("the SuperLink did not start within 60 s")
        time.sleep(0.2)
PY
sleep 1

echo "== flwr run (Deployment Engine, remote committee)"
flwr run "$here/../quickstart-pytorch" deploy --stream -c \
    "num-server-rounds=$rounds min-available-nodes=$nodes pot-committee='$work/committee/committee.toml' pot-keystore='$work/keystore'"

echo "== ledgers"
for ledger in "$work"/committee/validator-*/chains/run-*; do pot ledger verify "$ledger"; done
pot ledger show "$(ls -d "$work"/committee/validator-0/chains/run-* | head -1)"

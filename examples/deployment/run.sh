#!/usr/bin/env bash
# Flower Deployment Engine + a PoT committee of 4 validator processes, all on loopback:
# flower-superlink, NODES flower-supernodes (one per miner), `pot committee up --local 4`,
# then `flwr run` of the quickstart against the remote committee, and every
# validator's ledger verified. Every process this script starts leads its own process
# group (setsid), and each group is stopped by its id on exit, also on errors or Ctrl-C:
# what the SuperLink and SuperNodes spawn (flower-superexec, flwr-serverapp,
# flwr-clientapp) goes with them.
#   bash examples/deployment/run.sh            # ROUNDS=2 NODES=2 by default
#   NODES=10 ROUNDS=1 WORK=/tmp/dep bash examples/deployment/run.sh -c batch-size=64
#   (arguments go to `flwr run`; WORK: where logs, keys and ledgers go)
# It fails (exit 1) unless Flower reports the run `finished:completed` and every
# validator's ledger verifies with exactly ROUNDS certified rounds.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../../scripts/bootstrap.sh"          # .venv with pot-flower, flwr, torch
rounds=${ROUNDS:-2}
nodes=${NODES:-2}
work=${WORK:-"$root/runs/deployment-$(date +%Y%m%d-%H%M%S)"}
mkdir -p "$work"
groups=()   # process-group ids (= PIDs of the leaders)
alive() {   # the live (not zombie) processes of process group (or session) $1
    ps -eo pid=,pgid=,sid=,stat= | awk -v g="$1" '($2 == g || $3 == g) && $4 !~ /^Z/ {print $1}'
}
cleanup() { # SIGTERM every group, wait up to 30 s for all of them, then SIGKILL
    local g i left
    for g in "${groups[@]}"; do kill -TERM -- "-$g" 2>/dev/null || true; done
    for i in $(seq 1 60); do
        left=""
        for g in "${groups[@]}"; do left+=$(alive "$g"); done
        [ -z "$left" ] && break
        sleep 0.5
    done
    for g in "${groups[@]}"; do
        if [ -n "$(alive "$g")" ]; then
            echo "process group $g did not stop on SIGTERM: SIGKILL" >&2
            kill -KILL -- "-$g" $(alive "$g") 2>/dev/null || true
        fi
    done
    for g in "${groups[@]}"; do wait "$g" 2>/dev/null || true; done
    if [ ${#groups[@]} -gt 0 ]; then echo "== [${SECONDS} s] stopped process groups ${groups[*]}"; fi
}
trap cleanup EXIT
port() { python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

echo "== [${SECONDS} s] committee: 4 validators (logs in $work/committee/validator-*/validator.log)"
# `setsid CMD &` in this non-interactive shell: CMD leads a new session and process
# group whose id is $!.
setsid pot committee up --local 4 --dir "$work/committee" > "$work/committee.out" 2>&1 &
groups+=($!)
until grep -q "committee of 4" "$work/committee.out"; do
    kill -0 "$!" 2>/dev/null || { cat "$work/committee.out" >&2; exit 1; }
    sleep 0.5
done
cat "$work/committee.out"

echo "== [${SECONDS} s] flower-superlink and $nodes flower-supernodes"
export FLWR_HOME="$work/flwr-home" FLWR_DISABLE_UPDATE_CHECK=1 FLWR_TELEMETRY_ENABLED=0
link=$(port)   # one HTTP port serves the Fleet, Control and Runtime APIs
# Flower's default in-memory state (no --database FILE): with a state file, 10
# SuperNodes on a busy 2-core machine ran into SQLite's 5 s busy timeout ("database
# is locked", HTTP 500) and a SuperNode's reply was lost.
setsid flower-superlink --insecure --disable-runtime-dependency-installation \
    --host 127.0.0.1 --port "$link" \
    > "$work/superlink.log" 2>&1 &
groups+=($!)
for i in $(seq 0 $((nodes - 1))); do
    setsid flower-supernode --insecure --superlink "127.0.0.1:$link" --port "$(port)" \
        --node-config "partition-id=$i num-partitions=$nodes" \
        > "$work/supernode-$i.log" 2>&1 &
    groups+=($!)
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

echo "== [${SECONDS} s] flwr run (Deployment Engine, remote committee)"
flwr run "$here/../quickstart-pytorch" deploy --stream -c \
    "num-server-rounds=$rounds min-available-nodes=$nodes pot-committee='$work/committee/committee.toml' pot-keystore='$work/keystore'" \
    "$@" | tee "$work/flwr-run.out"
run_id=$(sed -n 's/.*Successfully started run \([0-9]*\).*/\1/p' "$work/flwr-run.out" | head -1)
[ -n "$run_id" ] || { echo "flwr run started no run" >&2; exit 1; }
# `--stream` returns when the log stream ends, also when the stream broke off early
# (e.g. an HTTP error from a busy SuperLink): ask Flower how the run ended, waiting
# up to RUN_WAIT seconds (default 600) if it is still going.
status() {
    flwr ls deploy --run-id "$run_id" --format json |
        python -c 'import json, sys; print(json.load(sys.stdin)["runs"][0]["status"])'
}
deadline=$((SECONDS + ${RUN_WAIT:-600}))
until state=$(status) && [[ $state == finished:* ]]; do
    if ((SECONDS > deadline)); then
        echo "run $run_id is still ${state:-unknown} after ${RUN_WAIT:-600} s" >&2
        exit 1
    fi
    echo "run $run_id: ${state:-unknown} (the log stream ended; waiting)"
    sleep 5
done
echo "run $run_id: $state"
[ "$state" = finished:completed ] || exit 1

echo "== [${SECONDS} s] ledgers"
# --expect-height: every ledger holds exactly the rounds that were asked for.
for ledger in "$work"/committee/validator-*/chains/run-*; do
    pot ledger verify "$ledger" --expect-height "$rounds"
done
pot ledger show "$(ls -d "$work"/committee/validator-0/chains/run-* | head -1)"
echo "== [${SECONDS} s] done"

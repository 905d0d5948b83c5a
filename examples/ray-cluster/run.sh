#!/usr/bin/env bash
# Flower's simulation engine on a Ray cluster, with Proof of Training: a Ray head and
# RAY_NODES-1 more Ray nodes (1 CPU each, all on this machine), a simulation SuperLink
# started with RAY_ADDRESS pointing at the head, `flwr run` of the quickstart with
# PoTStrategy and its embedded committee, every validator's ledger verified, and the
# cluster asked which of its nodes ran Flower's ClientApp actors (written to
# $WORK/cluster.json). Every process this script starts gets its own process group and
# is stopped by that group's id on exit (also on errors or Ctrl-C).
#   bash examples/ray-cluster/run.sh                      # ROUNDS=2 NODES=4 RAY_NODES=2
#   RAY_ADDRESS=10.0.0.1:6379 bash examples/ray-cluster/run.sh   # your cluster, on its head
#   bash examples/ray-cluster/run.sh -c batch-size=128    # more `flwr run` arguments
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../../scripts/bootstrap.sh"          # .venv with pot-flower, flwr, ray, torch
rounds=${ROUNDS:-2}
nodes=${NODES:-4}           # simulated SuperNodes (miners)
ray_nodes=${RAY_NODES:-2}   # Ray nodes to start here (ignored with RAY_ADDRESS)
work=${WORK:-"$root/runs/ray-cluster-$(date +%Y%m%d-%H%M%S)"}
mkdir -p "$work"
export RAY_USAGE_STATS_ENABLED=0 RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO=0
export FLWR_HOME="$work/flwr-home" FLWR_DISABLE_UPDATE_CHECK=1 FLWR_TELEMETRY_ENABLED=0

groups=()      # process-group ids (= PIDs of the leaders), in start order
ray_tmp=""
alive() {  # the live (not zombie) processes of process group (or session) $1
    ps -eo pid=,pgid=,sid=,stat= | awk -v g="$1" '($2 == g || $3 == g) && $4 !~ /^Z/ {print $1}'
}
cleanup() {  # SIGTERM every group (newest first), wait up to 30 s, then SIGKILL
    local g i left
    for ((i = ${#groups[@]} - 1; i >= 0; i--)); do kill -TERM -- "-${groups[i]}" 2>/dev/null || true; done
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
    if [ ${#groups[@]} -gt 0 ]; then
        echo "== [${SECONDS} s] stopped process groups ${groups[*]}"
    fi
    if [ -n "$ray_tmp" ]; then rm -rf "$ray_tmp"; fi
}
trap cleanup EXIT
# Free TCP ports, distinct from each other.
ports() {
    python - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}
# `setsid CMD &` in this (non-interactive) shell: CMD runs as the leader of a new
# session and process group whose id is $!; everything it spawns stays in it.
started() { groups+=("$1"); echo "   process group $1: $2"; }
wait_for() {  # wait_for FILE PATTERN PID WHAT
    local i
    for i in $(seq 1 240); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || { tail -20 "$1" >&2; echo "$4 exited" >&2; exit 1; }
        sleep 0.5
    done
    tail -20 "$1" >&2
    echo "$4 did not start within 120 s" >&2
    exit 1
}

link=""        # the SuperLink's port
if [ -n "${RAY_ADDRESS:-}" ]; then
    address=$RAY_ADDRESS
    echo "== [${SECONDS} s] Ray cluster: $address (yours; nothing started)"
else
    # A short temp dir: Ray puts Unix sockets in it (paths must stay < 108 bytes).
    # Its own temp dir also keeps this cluster out of /tmp/ray/ray_current_cluster,
    # which a plain ray.init() elsewhere on this machine would connect to.
    ray_tmp=$(mktemp -d /tmp/pot-ray-XXXXXX)
    # Every port at once (distinct): the head's GCS and client server, six per node,
    # and the SuperLink's.
    read -r -a free <<<"$(ports $((3 + 6 * ray_nodes)))"
    gcs=${free[0]} client=${free[1]} link=${free[2]}
    address="127.0.0.1:$gcs"
    echo "== [${SECONDS} s] Ray cluster: $ray_nodes nodes of 1 CPU on this machine, head $address (temp dir $ray_tmp)"
    for n in $(seq 0 $((ray_nodes - 1))); do
        # Own ports for every Ray service, so that other Ray instances here don't collide.
        read -r nm om dl dg re me <<<"${free[*]:$((3 + 6 * n)):6}"
        node_args=(--block --num-cpus 1 --object-store-memory 150000000 --temp-dir "$ray_tmp"
            --disable-usage-stats --node-manager-port "$nm" --object-manager-port "$om"
            --dashboard-agent-listen-port "$dl" --dashboard-agent-grpc-port "$dg"
            --runtime-env-agent-port "$re" --metrics-export-port "$me")
        if [ "$n" = 0 ]; then
            setsid ray start --head --port "$gcs" --ray-client-server-port "$client" \
                --include-dashboard false "${node_args[@]}" > "$work/ray-head.log" 2>&1 &
            started $! "ray start --head --port $gcs (log $work/ray-head.log)"
            wait_for "$work/ray-head.log" "Ray runtime started" $! "the Ray head"
        else
            setsid ray start --address "$address" "${node_args[@]}" \
                > "$work/ray-node-$n.log" 2>&1 &
            started $! "ray start --address $address (log $work/ray-node-$n.log)"
            wait_for "$work/ray-node-$n.log" "Ray runtime started" $! "Ray node $n"
        fi
    done
fi

echo "== [${SECONDS} s] flower-superlink --simulation with RAY_ADDRESS=$address"
# One HTTP port serves the SuperLink's Fleet, Control and Runtime APIs.
[ -n "$link" ] || link=$(ports 1)
# The only change from a laptop run: RAY_ADDRESS in the SuperLink's environment. The
# SuperLink's flwr-simulation inherits it, and Flower's Ray backend calls ray.init()
# without an address, which connects to RAY_ADDRESS.
RAY_ADDRESS=$address setsid flower-superlink --insecure --simulation \
    --isolation subprocess --disable-runtime-dependency-installation \
    --host 127.0.0.1 --port "$link" --database "$work/superlink.db" \
    > "$work/superlink.log" 2>&1 &
started $! "flower-superlink --simulation --port $link (log $work/superlink.log)"
mkdir -p "$FLWR_HOME"
cat > "$FLWR_HOME/config.toml" <<TOML
[superlink]
default = "cluster"

[superlink.cluster]
address = "127.0.0.1:$link"
insecure = true
TOML
python - "$link" <<'PY'
import sys, time, urllib.request
deadline = time.monotonic() + 60
while True:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=1).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit("the SuperLink did not start within 60 s")
        time.sleep(0.3)
PY

echo "== [${SECONDS} s] flwr run (simulation engine on the Ray cluster, $nodes SuperNodes, $rounds rounds)"
flwr run "$here/../quickstart-pytorch" cluster --stream \
    -c "num-server-rounds=$rounds pot-ledger-dir='$work/ledger' pot-keystore='$work/keystore'" \
    --federation-config "num-supernodes=$nodes client-resources-num-cpus=1" "$@"

echo "== [${SECONDS} s] ledgers"
for ledger in "$work"/ledger/validator-*; do pot ledger verify "$ledger"; done

echo "== [${SECONDS} s] the cluster: which Ray nodes ran Flower's ClientApp actors"
python - "$address" "$work/cluster.json" <<'PY'
import json, sys
from collections import Counter

import ray
import ray._private.state as state  # the GCS tables; ray.util.state needs the dashboard

ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
nodes = {n["NodeID"]: n for n in ray.nodes() if n["Alive"]}
jobs = [j for j in state.state.job_table() if "flwr-simulation" in j.get("Entrypoint", "")]
if not jobs:
    sys.exit("no flwr-simulation driver ever connected to this cluster")
job = max(jobs, key=lambda j: j["StartTime"])
actors = [
    a for a in state.actors().values()
    if a["ActorClassName"] == "ClientAppActor" and a["JobID"] == job["JobID"]
]
per_node = Counter(a["Address"]["NodeID"] for a in actors)
summary = {
    "address": sys.argv[1],
    "driver": {"job": job["JobID"], "pid": job["DriverPid"], "entrypoint": job["Entrypoint"]},
    "nodes": {
        nid: {"ip": n["NodeManagerAddress"], "cpus": n["Resources"].get("CPU", 0),
              "client_app_actors": per_node.get(nid, 0)}
        for nid, n in nodes.items()
    },
}
ray.shutdown()
with open(sys.argv[2], "w") as f:
    json.dump(summary, f, indent=2)
print(f"driver: job {job['JobID']}, pid {job['DriverPid']}: {job['Entrypoint'][:90]}")
for nid, n in summary["nodes"].items():
    print(f"node {nid[:12]} {n['ip']}  CPUs {n['cpus']:g}  ClientAppActors {n['client_app_actors']}")
idle = [nid for nid, n in summary["nodes"].items() if n["cpus"] >= 1 and not n["client_app_actors"]]
if idle or not actors:
    sys.exit(f"Ray nodes that ran no ClientApp: {[nid[:12] for nid in idle]}")
print(f"ClientAppActors ran on {len(per_node)} of {len(nodes)} Ray nodes")
PY

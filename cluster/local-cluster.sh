#!/usr/bin/env bash
# A multi-node Ray cluster on this machine, on loopback only, for trying tunehouse's cluster
# mode and for its tests.
#
#   cluster/local-cluster.sh start [--workers N] [--cpus C] [--dir DIR] [--worker-resources JSON]
#   cluster/local-cluster.sh add-worker [--dir DIR] [--cpus C]   # one more node (e.g. to kill one)
#   cluster/local-cluster.sh stop  [--dir DIR]
#   cluster/local-cluster.sh env   [--dir DIR]      # prints the exports a client needs
#
# Every node binds 127.0.0.1 (--node-ip-address, --dashboard-host), uses its own ports and
# the cluster's own --temp-dir under DIR, and token auth (RAY_AUTH_MODE=token). `stop` ends
# exactly the processes whose command line names this cluster's temp dir (never `ray stop`,
# which would stop every Ray on the machine), with the Python that `start` used (the one that
# runs $RAY, default .venv/bin/ray, else the `ray` on PATH; recorded in DIR/python, it has
# psutil). The first worker gets --worker-resources
# (default {"worker_b": 1}) so placement on a custom resource can be tried.
# Needs ray[default,client] (pip install -e '.[cluster]'). Ray resolves 127.0.0.1 to this
# host's own interface address for node IPs; nothing leaves the machine either way.
set -euo pipefail

cmd=${1:-}; shift || true
workers=2; cpus=1; dir=${TUNEHOUSE_CLUSTER_DIR:-/tmp/tunehouse-cluster}; wres='{"worker_b": 1}'
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) workers=$2; shift 2 ;;
    --cpus) cpus=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --worker-resources) wres=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
here=$(cd "$(dirname "$0")/.." && pwd)
ray=${RAY:-$here/.venv/bin/ray}
[ -x "$ray" ] || ray=$(command -v ray || true)   # `stop` and `env` need no ray
need_ray() { [ -n "$ray" ] || { echo "no ray: set RAY=/path/to/bin/ray or put ray on PATH" >&2; exit 2; }; }
export RAY_AUTH_MODE=token RAY_USAGE_STATS_ENABLED=0
# Job entrypoints (`tunehouse run`, from `tunehouse submit`) run in a shell the head's Ray
# starts: put this Python environment first on its PATH, as an image or a venv would be.
[ -z "$ray" ] || export PATH="$(dirname "$ray"):$PATH"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Worker port ranges sit below Linux's ephemeral range (32768-60999), where free_port's ports
# come from: Ray refuses to start a node two of whose ports collide (seen: a dashboard agent's
# free port inside a range drawn from 20000-40199).
EPHEMERAL=32768

failed() {  # a `ray start` failed: say so with the end of its log (the log stays in --dir)
  echo "ray start failed (log: $1):" >&2
  tail -n 15 "$1" >&2
  exit 1
}

node_ports() {  # a distinct set of ports for one node
  echo "--node-manager-port=$(free_port) --object-manager-port=$(free_port) \
--dashboard-agent-listen-port=$(free_port) --dashboard-agent-grpc-port=$(free_port) \
--runtime-env-agent-port=$(free_port) --metrics-export-port=$(free_port)"
}

case "$cmd" in
  start)
    need_ray
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    tmp="$dir/ray"   # our own --temp-dir: how `stop` finds our processes
    # Ray puts unix sockets (108-byte limit) under <temp-dir>/session_<time>/sockets; a long
    # --dir leaves the dashboard half-started (no job server), so refuse it up front.
    if [ ${#tmp} -gt 40 ]; then
      echo "--dir $dir is too long for Ray's unix socket paths: use a path of at most 36 characters" >&2
      exit 2
    fi
    mkdir -p "$tmp"
    # `stop` needs a Python with psutil, wherever this script and tunehouse live: the one that
    # runs this `ray` (its #! line; else the python beside it) has it, as Ray depends on it
    py=$(head -n1 "$ray" | sed -n 's/^#! *\([^ ]*python[^ ]*\).*/\1/p')
    [ -x "$py" ] || py=$(dirname "$ray")/python
    [ -x "$py" ] || py=$(command -v python3)
    echo "$py" >"$dir/python"
    # a free port can be taken again before Ray binds it: the head gets three tries, fresh ports each
    for try in 1 2 3; do
      gcs=$(free_port); dash=$(free_port); client=$(free_port)
      base=$((10000 + RANDOM % (EPHEMERAL - 10000 - 200 * (workers + 1))))
      ports=$(node_ports)
      # `nodes` lists each node's name and node-manager port: its raylet is the process of this
      # cluster whose command line has --node_manager_port=<port> (how tests kill one node)
      echo "head ${ports#--node-manager-port=}" | cut -d' ' -f1-2 >"$dir/nodes"
      # shellcheck disable=SC2086
      if "$ray" start --head --node-ip-address=127.0.0.1 --port="$gcs" \
        --dashboard-host=127.0.0.1 --dashboard-port="$dash" --ray-client-server-port="$client" \
        --num-cpus="$cpus" --temp-dir="$tmp" --disable-usage-stats \
        --min-worker-port=$base --max-worker-port=$((base + 199)) $ports >"$dir/head.log" 2>&1; then
        break
      fi
      [ "$try" -lt 3 ] || failed "$dir/head.log"
      "$0" stop --dir "$dir" >/dev/null  # what the failed try left running (it names our temp dir)
    done
    for i in $(seq 1 "$workers"); do
      res='{}'; [ "$i" -eq 1 ] && res=$wres
      lo=$((base + 200 * i))
      ports=$(node_ports)
      echo "worker-$i ${ports#--node-manager-port=}" | cut -d' ' -f1-2 >>"$dir/nodes"
      # shellcheck disable=SC2086
      "$ray" start --address="127.0.0.1:$gcs" --node-ip-address=127.0.0.1 --num-cpus="$cpus" \
        --resources="$res" --temp-dir="$tmp" --disable-usage-stats \
        --min-worker-port=$lo --max-worker-port=$((lo + 199)) $ports >"$dir/worker-$i.log" 2>&1 \
        || failed "$dir/worker-$i.log"
    done
    cat >"$dir/env" <<ENV
export RAY_AUTH_MODE=token
export RAY_ADDRESS=127.0.0.1:$gcs
export RAY_API_SERVER_ADDRESS=http://127.0.0.1:$dash
export TUNEHOUSE_CLIENT_ADDRESS=ray://127.0.0.1:$client
ENV
    echo "started head + $workers worker(s): GCS 127.0.0.1:$gcs, dashboard http://127.0.0.1:$dash"
    echo "clients: source $dir/env"
    ;;
  add-worker)
    # one more worker node in a running cluster (named worker-<n> in `nodes`)
    [ -f "$dir/env" ] || { echo "no cluster in $dir" >&2; exit 2; }
    need_ray
    dir=$(cd "$dir" && pwd)
    tmp="$dir/ray"
    gcs=$(sed -n 's/^export RAY_ADDRESS=//p' "$dir/env")
    n=$(( $(wc -l <"$dir/nodes") ))
    lo=$((10000 + RANDOM % (EPHEMERAL - 10000 - 200)))
    ports=$(node_ports)
    echo "worker-$n ${ports#--node-manager-port=}" | cut -d' ' -f1-2 >>"$dir/nodes"
    # shellcheck disable=SC2086
    "$ray" start --address="$gcs" --node-ip-address=127.0.0.1 --num-cpus="$cpus" \
      --resources='{}' --temp-dir="$tmp" --disable-usage-stats \
      --min-worker-port=$lo --max-worker-port=$((lo + 199)) $ports >"$dir/worker-$n.log" 2>&1 \
      || failed "$dir/worker-$n.log"
    echo "added worker-$n"
    ;;
  stop)
    [ -d "$dir/ray" ] || { echo "no cluster in $dir"; exit 0; }
    tmp=$(cd "$dir/ray" && pwd)
    py=$(cat "$dir/python" 2>/dev/null || true)   # the Python `start` used
    [ -x "$py" ] || py=$here/.venv/bin/python      # a cluster started before it was recorded
    [ -x "$py" ] || py=$(command -v python3)
    # The processes whose command line names our temp dir, and all their descendants (the
    # dashboard's forkserver children and the workers do not name it themselves).
    "$py" - "$tmp" <<'PY'
import sys, time, psutil
tmp = sys.argv[1]
me = psutil.Process()
mine = {me.pid, *(p.pid for p in me.parents())}  # this script names the dir too
roots = [p for p in psutil.process_iter(["cmdline"])
         if p.pid not in mine and any(tmp in a for a in (p.info["cmdline"] or []))]
family = {p.pid: p for r in roots for p in [r, *r.children(recursive=True)]}
procs = list(family.values())
for p in procs:
    try:
        p.terminate()
    except psutil.Error:
        pass
_, alive = psutil.wait_procs(procs, timeout=3)
for p in alive:
    try:
        p.kill()
    except psutil.Error:
        pass
print(f"stopped {len(procs)} process(es)")
PY
    echo "stopped the cluster in $dir"
    ;;
  env)
    cat "$dir/env"
    ;;
  *)
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac

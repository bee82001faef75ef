#!/usr/bin/env bash
# run.sh: producerd's side-by-side benchmark (issue 7). `make bench` calls this script.
#
# It builds the four drivers (producerd daemon + its gRPC load client, producerd core as a
# library, Apache RocketMQ's Java DefaultMQProducer with Maven, rocketmq-client-go), makes
# sure the real RocketMQ test cluster runs (it starts one with
# testinfra/rocketmq/cluster.sh when none does, and stops only a cluster it started
# itself), then runs bench/cmd/harness, which holds the cluster's exclusive lock while it
# runs every scenario and writes bench/results/RESULTS.md, throughput.svg and
# failover.svg (raw logs, traces and CPU profiles go to bench/results/raw/, not committed).
#
#   bench/run.sh                          everything (about 12-15 minutes on 2 cores)
#   bench/run.sh -scale 0.3               shorter cells, for a quick look
#   bench/run.sh -scenarios sync-64,failover -drivers core,java
#   bench/run.sh -dry                     print the driver commands only
#   bench/run.sh -scenarios rmqv2-proxy   only the RocketMQ 5 gRPC comparison with the Proxy
#   bench/run.sh -growth                  also the growth table (dev broker, ~20 min more)
#   bench/run.sh -scenarios growth-topics,growth-groups   only the growth table
#
# Any argument is passed to the harness (bin/harness -h lists them).
# Environment: PRODUCERD_RMQ_STATE (cluster state file), MVN, JAVA, GO.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
STATE="${PRODUCERD_RMQ_STATE:-$REPO/.rmq/cluster.json}"
CLUSTER="$REPO/testinfra/rocketmq/cluster.sh"
GO="${GO:-go}"
MVN="${MVN:-mvn}"
cd "$HERE"

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }

# cluster_running: the state file exists and every PID it records is alive.
cluster_running() {
  [[ -f "$STATE" ]] || return 1
  local pids pid
  pids="$(grep -oE '"(namesrvPid|pid)": *[0-9]+' "$STATE" | grep -oE '[0-9]+$' || true)"
  [[ -n "$pids" ]] || return 1
  for pid in $pids; do kill -0 "$pid" 2>/dev/null || return 1; done
}

started_cluster=0
stop_cluster() {
  if ((started_cluster)); then
    log "stopping the cluster this script started"
    RMQ_STATE="$STATE" bash "$CLUSTER" stop || true
  fi
}
trap stop_cluster EXIT

mkdir -p bin results/raw

# --- builds ------------------------------------------------------------------------
build_go() { # build_go OUT PKG [FLAGS...]
  local out="$1" pkg="$2"
  shift 2
  "$GO" build "$@" -o "bin/$out" "$pkg" 2>"results/raw/build-$out.log"
}

log "building the Go drivers and the harness"
if ! build_go harness ./cmd/harness; then
  # A missing go.sum entry after someone changed the root module: tidy once (bench only).
  log "build failed ($(head -n1 results/raw/build-harness.log)); running go mod tidy in bench/ once"
  "$GO" mod tidy
  build_go harness ./cmd/harness || { cat results/raw/build-harness.log >&2; exit 1; }
fi
build_go clientgo-driver ./cmd/clientgo-driver || { cat results/raw/build-clientgo-driver.log >&2; exit 1; }

host_missing=""
if ! build_go core-driver ./cmd/core-driver; then
  host_missing="$(grep -m1 -E '\.go:[0-9]+' results/raw/build-core-driver.log || head -n1 results/raw/build-core-driver.log)"
  log "core-driver does not build with package host ($host_missing); building it with -tags nohost"
  build_go core-driver ./cmd/core-driver -tags nohost || { cat results/raw/build-core-driver.log >&2; exit 1; }
fi

# The strategies' WebAssembly modules for the strategy-paths scenario, next to the core
# driver (bin/wasm/NAME.wasm).
mkdir -p bin/wasm results/raw/build-wasm
for w in roundrobin:plugins/roundrobin/wasm latencyfault:plugins/latencyfault/wasm \
  leastlatency:plugins/examples/leastlatency/wasm keyhash:plugins/examples/keyhash/wasm; do
  if ! GOOS=wasip1 GOARCH=wasm build_go "wasm/${w%%:*}.wasm" "github.com/producerd/producerd/${w#*:}" -buildmode=c-shared; then
    log "the ${w%%:*} wasm module does not build (results/raw/build-wasm/${w%%:*}.wasm.log): its wasm cell will fail"
  fi
done

if ! build_go ingress-echo ./cmd/ingress-echo; then
  log "ingress-echo (the gRPC hop floor) does not build: sync-1's floor rows will be reported missing"
  rm -f bin/ingress-echo
fi
if ! build_go daemon-driver ./cmd/daemon-driver; then
  log "daemon-driver (gRPC load client) does not build: driver 1 will be reported missing"
  rm -f bin/daemon-driver
fi
# Driver 1's daemon, from ../cmd/producerd, built in this module (go.mod's tool line keeps
# its dependencies in bench/go.sum).
if ! build_go producerd github.com/producerd/producerd/cmd/producerd; then
  log "cmd/producerd does not build: driver 1 will be reported missing ($(head -n1 results/raw/build-producerd.log))"
  rm -f bin/producerd
fi

log "building the Java driver with Maven"
if ! (cd java && { timeout 300 "$MVN" -B -q -o package >"$HERE/results/raw/build-java.log" 2>&1 ||
  timeout 900 "$MVN" -B -q package >"$HERE/results/raw/build-java.log" 2>&1; }); then
  log "the Java driver does not build (results/raw/build-java.log): it will be reported missing"
  rm -f java/target/java-driver.jar
fi

# --- cluster -------------------------------------------------------------------------
if ! cluster_running; then
  log "no RocketMQ cluster running: starting one (and stopping it afterwards)"
  started_cluster=1
  RMQ_STATE="$STATE" bash "$CLUSTER" start
fi

# --- run ---------------------------------------------------------------------------
log "running the harness (it waits for the cluster's exclusive lock)"
# The RocketMQ 5 gRPC comparison (below) runs with every scenario, or when -scenarios
# names rmqv2-proxy; the harness runs unless that is all -scenarios names.
want_rmqv2=1 only_rmqv2=0 prev=""
for a in "$@"; do
  if [[ "$prev" == "-scenarios" || "$prev" == "--scenarios" ]]; then
    [[ ",$a," == *",rmqv2-proxy,"* ]] || want_rmqv2=0
    [[ "$a" == rmqv2-proxy ]] && only_rmqv2=1
  fi
  [[ "$a" == -dry || "$a" == --dry ]] && want_rmqv2=0
  prev="$a"
done
if ((!only_rmqv2)); then
  bin/harness -state "$STATE" -host-missing "$host_missing" -invocation "bench/run.sh $*" "$@"
fi

# --- RocketMQ 5 gRPC: producerd vs the Apache RocketMQ Proxy --------------------------
# The official Java SDK (5.0.8) against producerd's apache.rocketmq.v2 listener and
# against the Proxy 5.3.3 on the same brokers (internal/rmqv2 TestCompareWithProxy, about
# 4 minutes), written to results/rmqv2-proxy.md.
if ((want_rmqv2)); then
  log "comparing producerd's RocketMQ 5 gRPC endpoint with the Apache RocketMQ Proxy"
  if ! (cd "$REPO" && PRODUCERD_RMQ_STATE="$STATE" PRODUCERD_RMQV2_COMPARE=1 PRODUCERD_RMQV2_RESULTS="$HERE/results/rmqv2-proxy.md" \
    "$GO" test -count=1 -timeout 30m -run '^TestCompareWithProxy$' ./internal/rmqv2/ >"$HERE/results/raw/rmqv2-proxy.log" 2>&1); then
    log "the Proxy comparison failed (results/raw/rmqv2-proxy.log): $(tail -n 3 "$HERE/results/raw/rmqv2-proxy.log")"
  fi
fi


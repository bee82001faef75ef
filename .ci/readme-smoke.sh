#!/usr/bin/env bash
# Runs the README's quick-start commands literally against `producerd dev`, so every command
# the README shows is exercised in CI. Needs the default ports 7380, 7381, 7390 and 9876 free
# (.ci/run calls it before it starts the real RocketMQ cluster). Stops only the process it
# started, by PID.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO="$PWD"

work=$(mktemp -d)
go build -o "$work/producerd" ./cmd/producerd
cd "$work"
# SMOKE_DEV_FLAGS lets a developer run this next to a real cluster on 9876 (-namesrv 127.0.0.1:0).
./producerd dev ${SMOKE_DEV_FLAGS:-} >dev.log 2>&1 &
pid=$!
cleanup() {
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

for _ in $(seq 1 200); do
  ./producerd status >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat dev.log; echo "producerd dev exited" >&2; exit 1; }
  sleep 0.05
done
./producerd status >/dev/null || { cat dev.log; exit 1; }
# The daemon answering must be ours, not a leftover on the same ports.
kill -0 "$pid" 2>/dev/null || { cat dev.log; echo "producerd dev exited (ports taken?)" >&2; exit 1; }

step() { printf '  $ %s\n' "$*"; }
# expect PATTERN: the previous command's output (out.txt) must contain PATTERN. Output goes
# to a file first: `cmd | grep -q` would kill cmd with SIGPIPE under pipefail.
expect() { grep -q -- "$1" out.txt || { echo "expected '$1' in:" >&2; cat out.txt >&2; exit 1; }; }

step "producerd send TopicTest 'hello'"
./producerd send TopicTest 'hello' >out.txt; expect SEND_OK
step "echo hi | producerd send -keys k1 -tags t TopicTest"
echo hi | ./producerd send -keys k1 -tags t TopicTest >out.txt; expect SEND_OK
step "curl POST /v1/messages"
curl -sf -X POST http://127.0.0.1:7381/v1/messages -H 'Content-Type: application/json' -d '{"topic":"TopicTest","body":"hello","keys":["k1"]}' >out.txt; expect SEND_OK
step "grpcurl producerd.v1.Ingress/Send"
(cd "$REPO" && go run github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4 -plaintext \
  -d '{"message":{"topic":"TopicTest","body":"aGVsbG8="}}' 127.0.0.1:7380 producerd.v1.Ingress/Send) >out.txt; expect offsetMsgId
step "producerd status"
./producerd status >out.txt; expect broker-a
step "producerd strategy list"
./producerd strategy list >out.txt; expect latency
step "producerd bench -d 2s TopicTest"
./producerd bench -d 2s TopicTest >out.txt 2>&1; expect 'msgs/s'
step "curl /metrics"
curl -sf http://127.0.0.1:7390/metrics >out.txt; expect '^producerd_send_attempts_total'
step "producerd validate -c producer.toml"
./producerd validate -c "$REPO/producer.toml" >out.txt 2>&1
step "producerd simulate -scenario examples/scenarios/slow-broker.toml (first 3 s)"
./producerd simulate -scenario "$REPO/examples/scenarios/slow-broker.toml" -duration 3s -svg slow.svg >out.txt 2>&1; expect latency-fault
grep -q '<svg' slow.svg
echo "README commands: ok"

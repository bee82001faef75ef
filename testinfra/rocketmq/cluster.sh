#!/usr/bin/env bash
# cluster.sh: a real Apache RocketMQ test cluster on loopback (one NameServer, two broker
# masters broker-a and broker-b in cluster ItCluster), fetched from Maven Central through
# pom.xml next to this script and started with `java` directly (no RocketMQ shell scripts).
#
#   cluster.sh fetch          resolve the runtime classpath into cp.txt (Maven, reuses ~/.m2)
#   cluster.sh start          fresh run dir, start namesrv + brokers, create the IT_* topics,
#                             write the state file read by internal/rmqtest
#   cluster.sh stop           SIGTERM (then SIGKILL) the recorded PIDs, remove the state file
#   cluster.sh restart NAME   start broker NAME again (after a test killed it), update the state
#   cluster.sh status         recorded processes, listening ports, mqadmin clusterList
#   cluster.sh logs           tails of every stdout log and broker/namesrv/store log
#
# Environment (all optional):
#   RMQ_RUN_DIR       run dir (default /dev/shm/$RMQ_RUN_NAME, or /tmp/$RMQ_RUN_NAME when /dev/shm
#                     has less than 2 GiB free)
#   RMQ_RUN_NAME      default producerd-rmq (.ci/run uses producerd-rmq-ci)
#   RMQ_STATE         state file (default <repo>/.rmq/cluster.json)
#   RMQ_KEEP=1        stop keeps the run dir (logs, stores)
#   RMQ_NAMESRV_PORT  default 9876
#   RMQ_BROKER_A_PORT default 10911 (also uses port-2 and port+1)
#   RMQ_BROKER_B_PORT default 10921 (also uses port-2 and port+1)
#   RMQ_PROFILE=acl   the ACL profile instead: one NameServer and one broker, broker-acl, in
#                     cluster AclCluster, with 5.x authentication (ACL 2.0) on: user
#                     RMQ_ACL_ACCESS_KEY (default producerd) with secret RMQ_ACL_SECRET_KEY
#                     (default producerd-acl-secret); timerWheelEnable=false (a broker
#                     without timer messages); topics are auto-created. Own defaults:
#                     run name producerd-rmq-acl, state <repo>/.rmq/cluster-acl.json,
#                     RMQ_NAMESRV_PORT 9886, RMQ_BROKER_ACL_PORT 10951.
#   RMQ_BROKER_EXTRA_CONF  lines appended to every broker's config (e.g. timerWheelEnable=false)
#   RMQ_BOOT_TIMEOUT  seconds to wait for the servers (default 90)
#   RMQ_FETCH_TIMEOUT seconds for the Maven step (default 1200)
#   RMQ_MAVEN_REPO    a Maven local repository to use instead of ~/.m2/repository
#   RMQ_LOG_LINES     lines per file for `logs` (default 60)
#   RMQ_STOP_LOCK_WAIT seconds `stop` waits for tests holding .rmq/cluster.lock (default 120)
#   JAVA, MVN         the java and mvn commands
#
# Safety: this script only ever signals PIDs it recorded itself in the run dir, and only after
# checking that /proc/PID/cmdline is a java process carrying -Drocketmq.home.dir=<this run dir>.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SCRIPT="$HERE/$(basename "${BASH_SOURCE[0]}")"
REPO="$(cd "$HERE/../.." && pwd)"
POM="$HERE/pom.xml"
CPFILE="$HERE/cp.txt"
JAVA="${JAVA:-java}"
MVN="${MVN:-mvn}"

PROFILE="${RMQ_PROFILE:-default}"
CLUSTER_NAME=ItCluster
NS_PORT="${RMQ_NAMESRV_PORT:-9876}"
A_PORT="${RMQ_BROKER_A_PORT:-10911}"
B_PORT="${RMQ_BROKER_B_PORT:-10921}"
ACL_PORT="${RMQ_BROKER_ACL_PORT:-10951}"
BOOT_TIMEOUT="${RMQ_BOOT_TIMEOUT:-90}"
STATE="${RMQ_STATE:-$REPO/.rmq/cluster.json}"
BROKERS=(broker-a broker-b)
if [[ "$PROFILE" == acl ]]; then
  CLUSTER_NAME=AclCluster
  NS_PORT="${RMQ_NAMESRV_PORT:-9886}"
  STATE="${RMQ_STATE:-$REPO/.rmq/cluster-acl.json}"
  RMQ_RUN_NAME="${RMQ_RUN_NAME:-producerd-rmq-acl}"
  BROKERS=(broker-acl)
  ACL_AK="${RMQ_ACL_ACCESS_KEY:-producerd}"
  ACL_SK="${RMQ_ACL_SECRET_KEY:-producerd-acl-secret}"
elif [[ "$PROFILE" != default ]]; then
  echo "cluster.sh: unknown RMQ_PROFILE $PROFILE (default or acl)" >&2
  exit 2
fi
MARKER=.producerd-rmq-run-dir

# Test topics: NAME:QUEUES (read = write queues, per broker; created on every master of the cluster).
TOPICS=(
  IT_Remoting:4
  IT_Send:4
  IT_RoundRobin:8
  IT_Failover:4
  IT_Swap:4
  IT_Bench:8
  IT_Daemon:4
)
# The ACL broker refuses unsigned admin requests (mqadmin has no credentials here): its
# topics are auto-created by the first signed send.
if [[ "$PROFILE" == acl ]]; then TOPICS=(); fi

log() { printf '[cluster %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------------------------------------
# fetch

rocketmq_version() { sed -n 's:.*<rocketmq.version>\(.*\)</rocketmq.version>.*:\1:p' "$POM" | sed -n 1p; }

# cp_ok: cp.txt exists, matches the pom's version and every jar in it is present.
cp_ok() {
  [[ -s "$CPFILE" ]] || return 1
  local ver jar
  ver="$(rocketmq_version)"
  grep -q "rocketmq-broker-$ver.jar" "$CPFILE" || return 1
  [[ "$CPFILE" -nt "$POM" ]] || return 1
  while IFS= read -r -d: jar || [[ -n "$jar" ]]; do
    jar="${jar%$'\n'}"
    [[ -z "$jar" || -f "$jar" ]] || return 1
  done <"$CPFILE"
}

cmd_fetch() {
  command -v "$MVN" >/dev/null || die "mvn not found (install Maven 3.8+, e.g. apt-get install maven)"
  local t0 args out
  t0="$(now)"
  args=(-B -q -f "$POM" dependency:build-classpath -DincludeScope=runtime "-Dmdep.outputFile=$CPFILE.tmp")
  [[ -n "${RMQ_MAVEN_REPO:-}" ]] && args+=("-Dmaven.repo.local=$RMQ_MAVEN_REPO")
  log "fetch: resolving RocketMQ $(rocketmq_version) runtime classpath with Maven"
  rm -f "$CPFILE.tmp"
  # Offline first: with a warm ~/.m2 this needs no network at all.
  if ! out="$(timeout 300 "$MVN" -o "${args[@]}" 2>&1)"; then
    log "fetch: offline resolution failed, downloading (timeout ${RMQ_FETCH_TIMEOUT:-1200}s)"
    if ! out="$(timeout "${RMQ_FETCH_TIMEOUT:-1200}" "$MVN" "${args[@]}" 2>&1)"; then
      printf '%s\n' "$out" | tail -n 40 >&2
      die "fetch: mvn dependency:build-classpath failed"
    fi
  fi
  [[ -s "$CPFILE.tmp" ]] || die "fetch: Maven wrote no classpath"
  mv -f "$CPFILE.tmp" "$CPFILE"
  cp_ok || die "fetch: $CPFILE is incomplete"
  log "fetch: $(tr ':' '\n' <"$CPFILE" | grep -c .) jars in $(since "$t0") s -> $CPFILE"
}

classpath() {
  cp_ok || cmd_fetch
  cat "$CPFILE"
}

# ---------------------------------------------------------------------------------------------
# run dir, state

default_run_dir() {
  if [[ -n "${RMQ_RUN_DIR:-}" ]]; then
    printf '%s\n' "$RMQ_RUN_DIR"
    return
  fi
  local avail
  avail="$(df -Pk /dev/shm 2>/dev/null | awk 'NR==2 { print $4 }')"
  if [[ -n "$avail" && "$avail" -ge $((2 * 1024 * 1024)) ]]; then
    echo "/dev/shm/${RMQ_RUN_NAME:-producerd-rmq}"
  else
    echo "/tmp/${RMQ_RUN_NAME:-producerd-rmq}"
  fi
}

# state_field KEY: a top-level scalar of the state file (written one field per line by us).
state_field() {
  [[ -f "$STATE" ]] || return 0
  sed -n "s/^  \"$1\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}\$/\1/p" "$STATE" | sed -n 1p
}

# The run dir of the cluster this invocation talks to: the state file's, else the default.
RUN=""
resolve_run_dir() {
  local d
  d="$(state_field dir)"
  if [[ -n "$d" && -z "${RMQ_RUN_DIR:-}" ]]; then RUN="$d"; else RUN="$(default_run_dir)"; fi
  if [[ -f "$RUN/cluster.env" ]]; then
    # Ports actually used by that run.
    # shellcheck disable=SC1091
    source "$RUN/cluster.env"
  fi
}

# is_ours PID: PID is alive, is java, and carries -Drocketmq.home.dir=$RUN.
is_ours() {
  local pid="$1" arg first=1 java=0 home=0
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  while IFS= read -r -d '' arg; do
    if ((first)); then
      [[ "$(basename "$arg")" == java ]] && java=1
      first=0
    fi
    [[ "$arg" == "-Drocketmq.home.dir=$RUN" ]] && home=1
  done <"/proc/$pid/cmdline"
  ((java && home))
}

pid_of() { cat "$RUN/$1/pid" 2>/dev/null || true; }

write_state() {
  local tmp topics="" b sep="" t
  mkdir -p "$(dirname "$STATE")"
  tmp="$(mktemp "$STATE.XXXXXX")"
  for t in "${TOPICS[@]}"; do
    topics+="${topics:+, }\"${t%%:*}\""
  done
  {
    printf '{\n'
    printf '  "namesrv": "127.0.0.1:%s",\n' "$NS_PORT"
    printf '  "namesrvPid": %s,\n' "$(pid_of ns)"
    printf '  "cluster": "%s",\n' "$CLUSTER_NAME"
    printf '  "brokers": [\n'
    for b in "${BROKERS[@]}"; do
      printf '%s    {"name": "%s", "addr": "127.0.0.1:%s", "pid": %s}' "$sep" "$b" "$(broker_port "$b")" "$(pid_of "$b")"
      sep=$',\n'
    done
    printf '\n  ],\n'
    printf '  "topics": [%s],\n' "$topics"
    printf '  "script": "%s",\n' "$SCRIPT"
    printf '  "dir": "%s"\n' "$RUN"
    printf '}\n'
  } >"$tmp"
  chmod 644 "$tmp"
  mv -f "$tmp" "$STATE"
}

broker_port() {
  case "$1" in
  broker-a) echo "$A_PORT" ;;
  broker-b) echo "$B_PORT" ;;
  broker-acl) echo "$ACL_PORT" ;;
  *) die "unknown broker $1 (known: ${BROKERS[*]})" ;;
  esac
}

# ---------------------------------------------------------------------------------------------
# processes

JAVA_COMMON=()
java_common() {
  JAVA_COMMON=(
    -server -XX:+UseG1GC -XX:-OmitStackTraceInFastThrow
    --add-exports=java.base/sun.nio.ch=ALL-UNNAMED --add-opens=java.base/sun.nio.ch=ALL-UNNAMED
    --add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/java.lang=ALL-UNNAMED
    "-Drocketmq.home.dir=$RUN" -Dtls.server.mode=disabled -Djava.net.preferIPv4Stack=true
  )
}

# launch NAME MAINCLASS CONF JVMOPTS...: start one server JVM detached (own session), stdout in
# $RUN/NAME/stdout.log (the previous one is kept as stdout.N.log), PID in $RUN/NAME/pid.
launch() {
  local name="$1" main="$2" conf="$3" dir="$RUN/$1" n=1 cp
  shift 3
  cp="$(classpath)"
  mkdir -p "$dir"
  if [[ -f "$dir/stdout.log" ]]; then
    while [[ -f "$dir/stdout.$n.log" ]]; do n=$((n + 1)); done
    mv "$dir/stdout.log" "$dir/stdout.$n.log"
  fi
  rm -f "$dir/pid" "$dir/pid.tmp"
  java_common
  # `exec` keeps the PID: the recorded PID is the java process itself.
  # shellcheck disable=SC2016 # $$ and $@ belong to the inner bash
  setsid bash -c 'echo $$ >"$1.tmp" && mv "$1.tmp" "$1"; shift; exec "$@"' _ "$dir/pid" \
    "$JAVA" "${JAVA_COMMON[@]}" "$@" "-Duser.home=$dir" -cp "$cp" "$main" -c "$conf" \
    </dev/null >"$dir/stdout.log" 2>&1 &
  local i
  for ((i = 0; i < 100; i++)); do
    [[ -s "$dir/pid" ]] && break
    sleep 0.05
  done
  [[ -s "$dir/pid" ]] || die "$name: no PID recorded"
}

launch_namesrv() {
  launch ns org.apache.rocketmq.namesrv.NamesrvStartup "$RUN/namesrv.conf" \
    -Xms128m -Xmx256m -Drmq.logback.configurationFile=rmq.namesrv.logback.xml
}

launch_broker() {
  launch "$1" org.apache.rocketmq.broker.BrokerStartup "$RUN/$1.conf" \
    -Xms512m -Xmx512m -XX:MaxDirectMemorySize=512m -Drmq.logback.configurationFile=rmq.broker.logback.xml
}

# wait_boot NAME T0: wait until NAME's stdout has the boot line; fail fast if it died.
wait_boot() {
  local name="$1" t0="$2" pid
  pid="$(pid_of "$name")"
  while :; do
    if grep -q 'boot success' "$RUN/$name/stdout.log" 2>/dev/null; then
      log "$name: boot success (pid $pid) after $(since "$t0") s"
      return 0
    fi
    if ! is_ours "$pid"; then
      tail -n 40 "$RUN/$name/stdout.log" >&2 || true
      die "$name (pid $pid) exited during start-up"
    fi
    if awk -v a="$t0" -v b="$(now)" -v t="$BOOT_TIMEOUT" 'BEGIN { exit !(b - a > t) }'; then
      tail -n 40 "$RUN/$name/stdout.log" >&2 || true
      die "$name: no boot line within ${BOOT_TIMEOUT}s"
    fi
    sleep 0.2
  done
}

# mqadmin ARGS...: one MQAdminStartup run against our namesrv (exit code is always 0: check output).
mqadmin() {
  local cp
  cp="$(classpath)"
  mkdir -p "$RUN/admin"
  "$JAVA" -Xms64m -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto \
    "-Duser.home=$RUN/admin" "-Drocketmq.home.dir=$RUN" -Drmq.logback.configurationFile=rmq.tools.logback.xml \
    -Djava.net.preferIPv4Stack=true -cp "$cp" org.apache.rocketmq.tools.command.MQAdminStartup \
    "$@" -n "127.0.0.1:$NS_PORT" 2>&1 </dev/null
}

# wait_registered T0 NAME...: until clusterList shows every NAME in our cluster at its address.
wait_registered() {
  local t0="$1" out b ok
  shift
  while :; do
    out="$(mqadmin clusterList || true)"
    printf '=== %s clusterList\n%s\n' "$(date +%T.%N)" "$out" >>"$RUN/admin/clusterList.log"
    ok=1
    for b in "$@"; do
      grep -Eq "^$CLUSTER_NAME +$b +0 +127\.0\.0\.1:$(broker_port "$b") " <<<"$out" || ok=0
    done
    if [[ "$PROFILE" == acl ]]; then
      # clusterList asks the brokers for runtime stats, which the ACL broker refuses to an
      # unsigned client; the NameServer's route of TBW102 names every registered broker.
      out="$(mqadmin topicRoute -t TBW102 || true)"
      ok=1
      for b in "$@"; do grep -q "\"brokerName\" *: *\"$b\"" <<<"$out" || ok=0; done
    fi
    if ((ok)); then
      log "registered with the NameServer: $* (clusterList after $(since "$t0") s)"
      return 0
    fi
    if awk -v a="$t0" -v b="$(now)" -v t="$BOOT_TIMEOUT" 'BEGIN { exit !(b - a > t) }'; then
      printf '%s\n' "$out" >&2
      die "brokers $* not registered within ${BOOT_TIMEOUT}s"
    fi
    sleep 1
  done
}

create_topic() {
  local name="${1%%:*}" q="${1##*:}" out n
  out="$(mqadmin updateTopic -c "$CLUSTER_NAME" -t "$name" -r "$q" -w "$q")"
  n="$(grep -Ec "^create topic to 127\.0\.0\.1:($A_PORT|$B_PORT) success" <<<"$out" || true)"
  if [[ "$n" != 2 ]] || grep -q Exception <<<"$out"; then
    printf '%s\n' "$out" >&2
    return 1
  fi
}

create_topics() {
  local t0 t pids=() failed=0 p
  t0="$(now)"
  # Each mqadmin call is a JVM start (~0.6 s CPU) plus ~2.5 s idle in the client's shutdown
  # (NettyRemotingClient joins its event thread), so run them all at once.
  for t in "${TOPICS[@]}"; do
    create_topic "$t" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  ((failed == 0)) || die "topic creation failed (see above)"
  log "topics: ${#TOPICS[@]} created on both brokers in $(since "$t0") s"
}

port_in_use() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# stop_pids GRACE NAME...: SIGTERM the recorded PIDs (ours only), SIGKILL after GRACE seconds.
stop_pids() {
  local grace="$1" name pid live=() deadline
  shift
  for name in "$@"; do
    pid="$(pid_of "$name")"
    [[ -n "$pid" ]] || continue
    if is_ours "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      live+=("$name:$pid")
    else
      log "$name: recorded pid $pid is not running (or not ours); not signalled"
    fi
  done
  ((${#live[@]})) || return 0
  deadline=$(($(date +%s) + grace))
  local e still
  while :; do
    still=()
    for e in "${live[@]}"; do is_ours "${e##*:}" && still+=("$e"); done
    ((${#still[@]})) || break
    if (($(date +%s) >= deadline)); then
      for e in "${still[@]}"; do
        log "${e%%:*}: still running after ${grace}s, SIGKILL ${e##*:}"
        kill -KILL "${e##*:}" 2>/dev/null || true
      done
      sleep 0.5
      break
    fi
    sleep 0.2
  done
  for e in "${live[@]}"; do log "${e%%:*}: stopped (pid ${e##*:})"; done
}

# ---------------------------------------------------------------------------------------------
# configs

write_configs() {
  # scanAvailableNameSrv=false: the 5.x NameServer gives its own internal client the address
  # "<first non-loopback IPv4>:<port>" and would probe it every 3 s (it binds loopback only, so
  # each probe is a refused connect to a non-loopback address). Nothing else uses that client.
  cat >"$RUN/namesrv.conf" <<EOF
listenPort=$NS_PORT
bindAddress=127.0.0.1
scanAvailableNameSrv=false
EOF
  local b port
  for b in "${BROKERS[@]}"; do
    port="$(broker_port "$b")"
    # No trailing spaces: RocketMQ parses numbers untrimmed and silently ignores bad keys.
    # Transactions: check a half message back once it is 3 s old (default transactionTimeOut
    # 6000) in rounds every 5 s (default transactionCheckInterval 30000 in 5.3.3), so the
    # check-back tests take seconds (no minimum is enforced; the check thread reads the
    # interval when it starts, so only a broker start applies it). The tests read both from
    # the broker (GET_BROKER_CONFIG), so they also work against the defaults.
    # recallMessageEnable=true (default false) lets the v2 RecallMessage test recall for real.
    cat >"$RUN/$b.conf" <<EOF
brokerClusterName=$CLUSTER_NAME
brokerName=$b
brokerId=0
brokerRole=ASYNC_MASTER
flushDiskType=ASYNC_FLUSH
namesrvAddr=127.0.0.1:$NS_PORT
brokerIP1=127.0.0.1
brokerIP2=127.0.0.1
bindAddress=127.0.0.1
listenPort=$port
haListenPort=$((port + 1))
storePathRootDir=$RUN/$b/store
mappedFileSizeCommitLog=134217728
maxHashSlotNum=100000
maxIndexNum=400000
diskMaxUsedSpaceRatio=95
deleteWhen=04
fileReservedTime=48
autoCreateTopicEnable=true
autoCreateSubscriptionGroup=true
defaultTopicQueueNums=4
enablePropertyFilter=true
transactionTimeOut=3000
transactionCheckInterval=5000
recallMessageEnable=true
EOF
    if [[ "$PROFILE" == acl ]]; then
      # 5.x authentication (ACL 2.0); ACL 1.0 (plain_acl.yml, aclEnable) is gone in 5.3.3.
      # The timer wheel is off here so that a broker without timer support is tested too.
      cat >>"$RUN/$b.conf" <<EOF
authenticationEnabled=true
authenticationProvider=org.apache.rocketmq.auth.authentication.provider.DefaultAuthenticationProvider
authenticationMetadataProvider=org.apache.rocketmq.auth.authentication.provider.LocalAuthenticationMetadataProvider
initAuthenticationUser={"username":"$ACL_AK","password":"$ACL_SK"}
innerClientAuthenticationCredentials={"accessKey":"$ACL_AK","secretKey":"$ACL_SK"}
authConfigPath=$RUN/$b/auth
timerWheelEnable=false
EOF
    fi
    if [[ -n "${RMQ_BROKER_EXTRA_CONF:-}" ]]; then printf '%s\n' "$RMQ_BROKER_EXTRA_CONF" >>"$RUN/$b.conf"; fi
  done
  cat >"$RUN/cluster.env" <<EOF
NS_PORT=$NS_PORT
A_PORT=$A_PORT
B_PORT=$B_PORT
ACL_PORT=$ACL_PORT
EOF
}

# ---------------------------------------------------------------------------------------------
# commands

cmd_start() {
  local t0 t1 b p ports=() pct
  t0="$(now)"
  resolve_run_dir
  if [[ -f "$STATE" ]]; then
    local sp
    sp="$(state_field namesrvPid)"
    if is_ours "$sp"; then die "a cluster is already running (state $STATE, namesrv pid $sp); run '$0 stop' first"; fi
    log "removing stale state file $STATE"
    rm -f "$STATE"
  fi
  for b in ns "${BROKERS[@]}"; do
    p="$(pid_of "$b")"
    if [[ -n "$p" ]] && is_ours "$p"; then die "$b (pid $p) from $RUN is still running; run '$0 stop' first"; fi
  done
  # Fresh ports from the environment (not a stale cluster.env).
  NS_PORT="${RMQ_NAMESRV_PORT:-9876}" A_PORT="${RMQ_BROKER_A_PORT:-10911}" B_PORT="${RMQ_BROKER_B_PORT:-10921}"
  if [[ "$PROFILE" == acl ]]; then NS_PORT="${RMQ_NAMESRV_PORT:-9886}"; fi
  ports=("$NS_PORT")
  for b in "${BROKERS[@]}"; do
    p="$(broker_port "$b")"
    ports+=($((p - 2)) "$p" $((p + 1)))
  done
  for p in "${ports[@]}"; do
    port_in_use "$p" && die "port $p is already in use (ss -ltnp 'sport = :$p'); stop whatever holds it or set RMQ_*_PORT"
  done
  command -v "$JAVA" >/dev/null || die "java not found"
  command -v setsid >/dev/null || die "setsid not found (util-linux)"

  classpath >/dev/null

  # Fresh run dir; only ever delete a directory this script made.
  if [[ -e "$RUN" ]]; then
    if [[ -f "$RUN/$MARKER" ]]; then
      rm -rf "$RUN"
    elif [[ -d "$RUN" && -z "$(ls -A "$RUN")" ]]; then
      :
    else
      die "$RUN exists and was not made by this script; remove it or set RMQ_RUN_DIR"
    fi
  fi
  mkdir -p "$RUN"
  touch "$RUN/$MARKER"
  pct="$(df -P "$RUN" | awk 'NR==2 { sub(/%/, "", $5); print $5 }')"
  if [[ -n "$pct" && "$pct" -gt 70 ]]; then
    log "WARNING: the filesystem of $RUN is ${pct}% full; RocketMQ reclaims at 75%, deletes at 85%, refuses writes at 90%"
  fi
  write_configs
  log "run dir $RUN; profile $PROFILE; namesrv 127.0.0.1:$NS_PORT, brokers ${BROKERS[*]}"

  t1="$(now)"
  launch_namesrv
  wait_boot ns "$t1"
  t1="$(now)"
  for b in "${BROKERS[@]}"; do launch_broker "$b"; done
  for b in "${BROKERS[@]}"; do wait_boot "$b" "$t1"; done
  wait_registered "$t1" "${BROKERS[@]}"
  create_topics
  write_state
  log "state file $STATE"
  local pids="namesrv $(pid_of ns)"
  for b in "${BROKERS[@]}"; do pids+=", $b $(pid_of "$b")"; done
  log "cluster started in $(since "$t0") s (pids: $pids)"
}

cmd_stop() {
  resolve_run_dir
  # Tests hold a shared flock on cluster.lock next to the state file while they use the cluster
  # (internal/rmqtest): wait for running tests to finish before pulling the servers away.
  local lock
  lock="$(dirname "$STATE")/cluster.lock"
  if [[ -f "$lock" ]] && command -v flock >/dev/null; then
    exec 9<>"$lock"
    if ! flock -x -n 9; then
      log "waiting up to ${RMQ_STOP_LOCK_WAIT:-120}s for tests that hold $lock"
      flock -x -w "${RMQ_STOP_LOCK_WAIT:-120}" 9 || log "WARNING: tests still hold $lock; stopping anyway"
    fi
  fi
  if [[ ! -d "$RUN" ]]; then
    log "no run dir $RUN; nothing to stop"
    rm -f "$STATE"
    return 0
  fi
  stop_pids 30 "${BROKERS[@]}"
  stop_pids 30 ns
  if [[ -f "$STATE" ]]; then
    local d
    d="$(state_field dir)"
    if [[ -z "$d" || "$d" == "$RUN" ]]; then rm -f "$STATE"; fi
  fi
  if [[ "${RMQ_KEEP:-0}" == 1 ]]; then
    log "kept run dir $RUN (RMQ_KEEP=1)"
  elif [[ -f "$RUN/$MARKER" ]]; then
    rm -rf "$RUN"
    log "removed run dir $RUN"
  fi
}

cmd_restart() {
  local name="${1:-}" pid t0 i
  [[ -n "$name" ]] || die "usage: $0 restart broker-a|broker-b"
  broker_port "$name" >/dev/null
  resolve_run_dir
  [[ -f "$RUN/$name.conf" ]] || die "no $RUN/$name.conf: is the cluster started?"
  is_ours "$(pid_of ns)" || die "the NameServer is not running; use '$0 start'"
  pid="$(pid_of "$name")"
  if is_ours "$pid" && [[ "$(awk '/^State:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)" != Z ]]; then
    # Give a just-signalled JVM a moment, then refuse: restart is for a broker that is gone.
    sleep 2
    is_ours "$pid" && die "$name (pid $pid) is still running; kill it first"
  fi
  # A SIGKILLed JVM loses its /proc cmdline (mm) before the kernel closes its sockets: wait
  # until its listening ports are really free.
  local port p busy
  port="$(broker_port "$name")"
  for ((i = 0; i < 150; i++)); do
    busy=""
    for p in $((port - 2)) "$port" $((port + 1)); do port_in_use "$p" && busy="$p"; done
    [[ -z "$busy" ]] && break
    sleep 0.1
  done
  [[ -z "$busy" ]] || die "port $busy is still in use 15 s after $name stopped"
  t0="$(now)"
  launch_broker "$name"
  wait_boot "$name" "$t0"
  wait_registered "$t0" "$name"
  [[ -f "$STATE" ]] && write_state
  log "$name restarted in $(since "$t0") s (pid $(pid_of "$name"))"
}

cmd_status() {
  resolve_run_dir
  local n pid rss
  echo "state file: $STATE $([[ -f "$STATE" ]] && echo "(present)" || echo "(absent)")"
  echo "run dir:    $RUN"
  for n in ns "${BROKERS[@]}"; do
    pid="$(pid_of "$n")"
    if [[ -n "$pid" ]] && is_ours "$pid"; then
      rss="$(awk '/^VmRSS/ { printf "%d MiB", $2 / 1024 }' "/proc/$pid/status")"
      printf '%-9s pid %-8s running, RSS %s\n' "$n" "$pid" "$rss"
    else
      printf '%-9s pid %-8s not running\n' "$n" "${pid:--}"
    fi
  done
  local ports="$NS_PORT" bp
  for n in "${BROKERS[@]}"; do
    bp="$(broker_port "$n")"
    ports+="|$((bp - 2))|$bp|$((bp + 1))"
  done
  ss -Hltn | awk -v p="^($ports)\$" \
    '{ n = split($4, a, ":"); if (a[n] ~ p) print "listening " $4 }'
  if is_ours "$(pid_of ns)"; then mqadmin clusterList; else return 1; fi
}

cmd_logs() {
  resolve_run_dir
  local lines="${RMQ_LOG_LINES:-60}" f
  [[ -d "$RUN" ]] || die "no run dir $RUN"
  for f in "$RUN"/*/stdout*.log "$RUN"/*/logs/rocketmqlogs/{namesrv,broker,store}.log; do
    [[ -f "$f" ]] || continue
    echo "===== $f (last $lines lines)"
    # stdout starts with logback's own status dump (printed because of a config warning): skip it.
    grep -Ev '^[0-9:,]+ \|-(INFO|WARN) in ' "$f" | tail -n "$lines"
  done
}

case "${1:-}" in
fetch) cmd_fetch ;;
start) cmd_start ;;
stop) cmd_stop ;;
restart) cmd_restart "${2:-}" ;;
status) cmd_status ;;
logs) cmd_logs ;;
*)
  sed -n '2,30p' "$SCRIPT" | sed 's/^# \{0,1\}//' >&2
  exit 2
  ;;
esac

#!/usr/bin/env bash
# bench/peer_bench.sh: taskpipe's consumer against the usual Node SQS consumer, `sqs-consumer`, on
# the same SQS server and the same pre-filled queue, one after the other in one run.
#
# Peer: sqs-consumer 15.0.3 with @aws-sdk/client-sqs 3.1169.0 (pinned; installed on first use
# into the git-ignored .cache/npm/peer), run by bench/peer_consumer.mjs: batchSize 10,
# waitTimeSeconds 20, `handleMessage: async (m) => m` (the common per-message handler; returning
# the message is what makes sqs-consumer 15 delete it, with one DeleteMessage per message).
# sqs-consumer 15 declares Node >= 22 in "engines"; it installs (npm only warns) and runs on Node
# 20, which is what this machine has. PEER_HANDLER=batch runs it with
# `handleMessageBatch: async (ms) => ms` instead (one DeleteMessageBatch per receive), to show what
# the less common batch handler changes; the figures and targets are for the default, "message".
# taskpipe: `taskpipe consume --config F --log-level warn`, consumer.workers WORKERS (16),
# consumer.pollers POLLERS (1), batch_size 10, wait_time 20s, visibility 30s (the queue's default,
# which sqs-consumer also gets), queue.url given (no GetQueueUrl), a job whose handler is
# `{"type": "log"}`. taskpipe has no no-op handler; the log handler is the nearest: per task it
# builds its line (job name JSON-quoted, the task's JSON text, message id, receive count: a few
# string appends) and hands it to spdlog, which at warn level drops it before formatting; the line
# becomes the result's output, which is not logged either (successes are logged at debug). So the
# handler's cost is one short string build per task; everything else is the consumer's own work
# (receive, envelope parse, hand-off to a worker, result, batched delete).
#
# Server: fauxqs 1.9.2 on 127.0.0.1 (bench/fauxqs_server.mjs, installed into .cache/npm/fauxqs as
# bench/sqs_bench.sh does), not moto (its ReceiveMessage slows down with the queue's length). Both
# consumers talk to it through bench/counting_proxy.mjs, which counts their requests by action.
#
# First a warm-up, unmeasured: each consumer in turn drains WARMUP_MESSAGES messages on a queue of
# its own, so that fauxqs and the proxy (both Node, JIT-compiled) are as warm for the first measured
# consumer as for the second. Each measured consumer is a fresh process: its own cold start counts.
# Each consumer has its own queue: fauxqs does not drop a long poll whose client hung up, so a
# stopped consumer's last ReceiveMessage would take up to 10 messages of a refilled shared queue
# for nobody and hide them for the 30 s visibility timeout.
# Then per consumer (ORDER, default sqs-consumer first): its queue is filled with MESSAGES identical
# messages (`taskpipe send --job bench`, a tasks file of MESSAGES tasks: taskpipe envelopes with
# their MessageAttributes; sqs-consumer's handler does not look at them), the proxy's counts are
# reset, the consumer is started, and a watcher (a small Node loop asking fauxqs directly, every
# 20 ms, for visible + in-flight + delayed messages) notes when the queue is empty. Then:
#   messages/s          MESSAGES / (time the queue was seen empty - time the consumer was started):
#                       start-up (Node loading the SDK; taskpipe reading its config) is included.
#                       Also shown from the consumer's first ReceiveMessage (proxy timestamps).
#   CPU s / 1000 msgs   user + system CPU of the consumer process (all its threads; for sqs-consumer
#                       the node process) from /proc/PID/stat when the queue is empty, start-up
#                       included, per 1,000 messages. 10 ms ticks.
#   peak RSS            VmHWM of that process (/proc/PID/status) at the same moment.
#   requests/message    every request the consumer sent through the proxy until then, / MESSAGES.
# Printed as a table, then `name: value` lines, the three ratios taskpipe / sqs-consumer
#   cpu_ratio_vs_sqs_consumer         target <= 0.2
#   rss_ratio_vs_sqs_consumer         target <= 0.33
#   throughput_ratio_vs_sqs_consumer  target >= 1.0
# and whether each target is met. For reference (in no figure): the CPU fauxqs and the proxy used in
# each phase, and the load average (`uptime`) before and after each phase: the machine may be busy.
#
# Checks (each failure exits 1): both consumers start and are alive until the queue is empty, within
# DRAIN_TIMEOUT; the proxy saw no non-2xx answer; sqs-consumer handled and deleted every message
# without an error event and exited 0 on SIGTERM; taskpipe deleted every message (DeleteMessageBatch
# entries) and exited 0 on SIGTERM (drain). A missed target is reported, not a failure.
#
# Usage: bench/peer_bench.sh
# Environment (defaults):
#   TASKPIPE=build/taskpipe  MESSAGES=5000 (the issue asks >= 5,000)  WORKERS=16  POLLERS=1
#   ORDER="sqs-consumer taskpipe" (or "taskpipe sqs-consumer")  DRAIN_TIMEOUT=600 (seconds)
#   PEER_HANDLER=message (or batch: sqs-consumer with handleMessageBatch)
#   WARMUP_MESSAGES=1000 (0: no warm-up)
# Needs node + npm (Node 20), curl, jq. Loopback only, plus the npm registry for the first install.
# Exit 0 when every check passed (targets met or not), 1 when something failed, 2 on bad settings.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TASKPIPE=${TASKPIPE:-$ROOT/build/taskpipe}
MESSAGES=${MESSAGES:-5000}
WORKERS=${WORKERS:-16}
POLLERS=${POLLERS:-1}
ORDER=${ORDER:-sqs-consumer taskpipe}
PEER_HANDLER=${PEER_HANDLER:-message}
WARMUP_MESSAGES=${WARMUP_MESSAGES:-1000}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-600}
FAUXQS_VERSION=1.9.2
FAUXQS_PREFIX=$ROOT/.cache/npm/fauxqs
SQS_CONSUMER_VERSION=15.0.3
CLIENT_SQS_VERSION=3.1169.0
PEER_PREFIX=$ROOT/.cache/npm/peer
BATCH_SIZE=10
WAIT_SECONDS=20
WATCH_INTERVAL_MS=20

die() { echo "peer_bench: $*" >&2; exit 1; }
usage_error() { echo "peer_bench: $*" >&2; exit 2; }

for v in MESSAGES WORKERS POLLERS DRAIN_TIMEOUT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || usage_error "$v must be a positive integer, got '${!v}'"
done
[[ $WARMUP_MESSAGES =~ ^(0|[1-9][0-9]*)$ ]] && (( WARMUP_MESSAGES <= MESSAGES )) ||
  usage_error "WARMUP_MESSAGES must be an integer from 0 to MESSAGES, got '$WARMUP_MESSAGES'"
[[ $PEER_HANDLER == message || $PEER_HANDLER == batch ]] || usage_error "PEER_HANDLER must be message or batch, got '$PEER_HANDLER'"
case "$ORDER" in
  "sqs-consumer taskpipe" | "taskpipe sqs-consumer") ;;
  *) usage_error "ORDER must be \"sqs-consumer taskpipe\" or \"taskpipe sqs-consumer\", got '$ORDER'" ;;
esac
[[ -x $TASKPIPE ]] || usage_error "no taskpipe binary at $TASKPIPE (build it, or set TASKPIPE)"
for tool in node npm curl jq; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
(( MESSAGES >= 5000 )) || echo "peer_bench: note: MESSAGES=$MESSAGES; the issue's figures are for >= 5,000" >&2

# --- processes: everything started here is killed on exit ----------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/peer_bench.XXXXXX")
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits for a ready file; fails if the process died first.
wait_ready() {  # NAME PID FILE LOG
  for _ in $(seq 300); do
    [[ -s $3 ]] && return 0
    kill -0 "$2" 2>/dev/null || { cat "$4" >&2; die "$1 exited before it was ready"; }
    sleep 0.05
  done
  cat "$4" >&2
  die "$1 was not ready within 15 s"
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
load_average() { uptime | grep -oE 'load average: .*' | sed 's/load average: //'; }

# CPU seconds (user + system, all threads) a live process has used so far.
proc_cpu_seconds() {  # PID
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat"
}
# Peak resident set size of a live process, KiB.
proc_peak_rss_kib() {  # PID
  awk '$1 == "VmHWM:" { print $2; ok = 1 } END { exit !ok }' "/proc/$1/status"
}

# One SQS JSON-protocol call with curl; prints the response body, fails on a non-2xx answer.
sqs_call() {  # PORT ACTION JSON
  curl -sS --fail-with-body -X POST "http://127.0.0.1:$1/" \
    -H 'Content-Type: application/x-amz-json-1.0' -H "X-Amz-Target: AmazonSQS.$2" -d "$3" ||
    die "$2 on 127.0.0.1:$1 failed (body: $3)"
}

# Messages on a queue, visible + in flight + delayed, asked of fauxqs directly (not counted).
queue_depth() {  # QUEUE_URL
  sqs_call "$FAUXQS_PORT" GetQueueAttributes "$(jq -cn --arg u "$1" '{QueueUrl: $u, AttributeNames:
      ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"]}')" |
    jq -e '.Attributes | (.ApproximateNumberOfMessages | tonumber) + (.ApproximateNumberOfMessagesNotVisible | tonumber)
             + (.ApproximateNumberOfMessagesDelayed | tonumber)' ||
    die "GetQueueAttributes answer without the three counts"
}

counts() { curl -sS --fail "http://127.0.0.1:$PROXY_PORT/__counts$1" || die "the counting proxy does not answer"; }
reset_counts() { curl -sS --fail -X POST "http://127.0.0.1:$PROXY_PORT/__reset" >/dev/null || die "cannot reset the counting proxy"; }

# Fails, printing each exchange, when fauxqs answered anything counted since the last reset with a
# non-2xx status.
check_no_errors() {  # PHASE
  local c
  c=$(counts '')
  if [[ $(jq '.errors | length' <<<"$c") != 0 ]]; then
    echo "peer_bench: fauxqs rejected requests during the $1 phase:" >&2
    jq -r '.errors[] | "  \(.action) -> HTTP \(.status)\n    request:  \(.request)\n    response: \(.response)"' <<<"$c" >&2
    exit 1
  fi
}

# The drain watcher: asks fauxqs (directly, keep-alive, not counted) every WATCH_INTERVAL_MS for
# the queue's visible + in-flight + delayed messages; writes {"ready": true} to FILE.ready after
# its first answer and {"empty_at_ms": T} to FILE (T = when the answer "0" arrived) and exits.
# shellcheck disable=SC2016  # JavaScript template literals, not shell expansions
WATCHER_JS='
const http = require("node:http");
const fs = require("node:fs");
const [port, queueUrl, out, intervalMs] = process.argv.slice(1);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const body = JSON.stringify({ QueueUrl: queueUrl, AttributeNames: ["ApproximateNumberOfMessages",
  "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"] });
function write(file, value) {
  fs.writeFileSync(file + ".tmp", JSON.stringify(value) + "\n");
  fs.renameSync(file + ".tmp", file);
}
let first = true;
function poll() {
  const req = http.request({ host: "127.0.0.1", port: Number(port), method: "POST", path: "/", agent,
    headers: { "content-type": "application/x-amz-json-1.0", "x-amz-target": "AmazonSQS.GetQueueAttributes",
               "content-length": Buffer.byteLength(body) } }, (res) => {
    const chunks = [];
    res.on("data", (c) => chunks.push(c));
    res.on("end", () => {
      const at = Date.now();
      const text = Buffer.concat(chunks).toString();
      if (res.statusCode !== 200) { console.error(`watcher: HTTP ${res.statusCode}: ${text}`); process.exit(1); }
      const a = JSON.parse(text).Attributes;
      const n = Number(a.ApproximateNumberOfMessages) + Number(a.ApproximateNumberOfMessagesNotVisible) +
                Number(a.ApproximateNumberOfMessagesDelayed);
      if (first) { first = false; write(out + ".ready", { ready: true, depth: n }); }
      if (n === 0) { write(out, { empty_at_ms: at }); process.exit(0); }
      setTimeout(poll, Number(intervalMs));
    });
  });
  req.on("error", (e) => { console.error(`watcher: ${e.message}`); process.exit(1); });
  req.end(body);
}
poll();
'

# --- installs ---------------------------------------------------------------------------------------
if [[ $(jq -r .version "$FAUXQS_PREFIX/node_modules/fauxqs/package.json" 2>/dev/null) != "$FAUXQS_VERSION" ]]; then
  echo "installing fauxqs@$FAUXQS_VERSION into ${FAUXQS_PREFIX#"$ROOT"/} ..." >&2
  npm install --prefix "$FAUXQS_PREFIX" --no-audit --no-fund --loglevel=error "fauxqs@$FAUXQS_VERSION" >&2 ||
    die "npm install fauxqs@$FAUXQS_VERSION failed"
fi
if [[ $(jq -r .version "$PEER_PREFIX/node_modules/sqs-consumer/package.json" 2>/dev/null) != "$SQS_CONSUMER_VERSION" ||
      $(jq -r .version "$PEER_PREFIX/node_modules/@aws-sdk/client-sqs/package.json" 2>/dev/null) != "$CLIENT_SQS_VERSION" ]]; then
  echo "installing sqs-consumer@$SQS_CONSUMER_VERSION and @aws-sdk/client-sqs@$CLIENT_SQS_VERSION into ${PEER_PREFIX#"$ROOT"/} ..." >&2
  # sqs-consumer 15 declares "engines": {"node": ">=22"}; npm only warns (EBADENGINE) unless
  # engine-strict is set, so say it is not.
  npm install --prefix "$PEER_PREFIX" --no-audit --no-fund --loglevel=error --engine-strict=false --save-exact \
    "sqs-consumer@$SQS_CONSUMER_VERSION" "@aws-sdk/client-sqs@$CLIENT_SQS_VERSION" >&2 ||
    die "npm install sqs-consumer@$SQS_CONSUMER_VERSION @aws-sdk/client-sqs@$CLIENT_SQS_VERSION failed"
fi
# What npm resolved below the two pinned packages (the SDK's own @aws-sdk/* and @smithy/* parts).
sdk_versions() {
  local p
  for p in @aws-sdk/core @aws-sdk/middleware-sdk-sqs @smithy/core @smithy/node-http-handler; do
    printf '%s %s  ' "$p" "$(jq -r .version "$PEER_PREFIX/node_modules/$p/package.json" 2>/dev/null || echo '?')"
  done
}

# --- fauxqs and the counting proxy -----------------------------------------------------------------
node "$ROOT/bench/fauxqs_server.mjs" --prefix "$FAUXQS_PREFIX" --ready-file "$WORK/fauxqs.json" >"$WORK/fauxqs.log" 2>&1 &
PIDS+=($!)
wait_ready fauxqs $! "$WORK/fauxqs.json" "$WORK/fauxqs.log"
FAUXQS_PORT=$(jq -r .port "$WORK/fauxqs.json")
FAUXQS_PID=$(jq -r .pid "$WORK/fauxqs.json")

node "$ROOT/bench/counting_proxy.mjs" --upstream "127.0.0.1:$FAUXQS_PORT" --ready-file "$WORK/proxy.json" >"$WORK/proxy.log" 2>&1 &
PIDS+=($!)
wait_ready "counting proxy" $! "$WORK/proxy.json" "$WORK/proxy.log"
PROXY_PORT=$(jq -r .port "$WORK/proxy.json")
PROXY_PID=$(jq -r .pid "$WORK/proxy.json")

# One queue per consumer, created through the proxy, so the URL carries its address (fauxqs finds a
# queue by its URL whichever port a request comes in on); visibility timeout 30 s, SQS's default.
# Not one queue for both: fauxqs does not drop a long poll whose client hung up (the consumer
# stopped), so the first consumer's last ReceiveMessage would still be waiting on the queue when it
# is filled again, take up to 10 messages for nobody, and keep them invisible for 30 s.
declare -A QUEUE_URL
for q in sqs-consumer taskpipe warm-sqs-consumer warm-taskpipe; do
  QUEUE_URL[$q]=$(sqs_call "$PROXY_PORT" CreateQueue "{\"QueueName\": \"taskpipe-peer-bench-$q\", \"Attributes\": {\"VisibilityTimeout\": \"30\"}}" |
    jq -er .QueueUrl) || die "CreateQueue taskpipe-peer-bench-$q: no QueueUrl"
done

# Both consumers talk to the proxy with dummy credentials and nothing from this user's ~/.aws.
mkdir "$WORK/home"
export HOME=$WORK/home AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 \
  AWS_EC2_METADATA_DISABLED=true AWS_ENDPOINT_URL_SQS=http://127.0.0.1:$PROXY_PORT
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL AWS_DEFAULT_REGION AWS_SHARED_CREDENTIALS_FILE AWS_CONFIG_FILE \
  AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_CONTAINER_CREDENTIALS_FULL_URI 2>/dev/null || true

seq 1 "$MESSAGES" | awk '{ printf "{\"n\": %d, \"payload\": \"benchmark task number %d\"}\n", $1, $1 }' >"$WORK/tasks.txt"
head -n "$WARMUP_MESSAGES" "$WORK/tasks.txt" >"$WORK/warm-tasks.txt"
# The config of `taskpipe send` (filling either queue) and of `taskpipe consume` (its own queue).
for q in sqs-consumer taskpipe warm-sqs-consumer warm-taskpipe; do
  tasks=tasks.txt
  if [[ $q == warm-* ]]; then
    (( WARMUP_MESSAGES > 0 )) || continue
    tasks=warm-tasks.txt
  fi
  cat >"$WORK/bench-$q.json" <<EOF
{
  "queue": { "backend": "sqs", "url": "${QUEUE_URL[$q]}", "protocol": "json",
             "wait_time": "${WAIT_SECONDS}s", "visibility_timeout": "30s" },
  "consumer": { "workers": $WORKERS, "pollers": $POLLERS, "batch_size": $BATCH_SIZE, "shutdown_grace": "10s" },
  "jobs": [ { "name": "bench", "tasks_file": "$tasks", "handler": { "type": "log" } } ]
}
EOF
  "$TASKPIPE" check --config "$WORK/bench-$q.json" >/dev/null || die "taskpipe check rejects the generated config"
done

# Puts COUNT messages on queue Q (empty): the same tasks file, so the same bodies, each time.
fill_queue() {  # Q COUNT
  local depth n
  depth=$(queue_depth "${QUEUE_URL[$1]}")
  (( depth == 0 )) || die "the queue holds $depth messages before filling it for $1"
  "$TASKPIPE" send --config "$WORK/bench-$1.json" --job bench >"$WORK/send-$1.log" 2>&1 ||
    { cat "$WORK/send-$1.log" >&2; die "taskpipe send (filling the queue for $1) failed"; }
  n=$(grep -oE '^sent [0-9]+ messages?' "$WORK/send-$1.log" | grep -oE '[0-9]+') ||
    { cat "$WORK/send-$1.log" >&2; die "taskpipe send: no 'sent N messages' line"; }
  (( n == $2 )) || die "taskpipe send reported $n messages sent, expected $2"
  depth=$(queue_depth "${QUEUE_URL[$1]}")
  (( depth == $2 )) || die "after filling, queue $1 holds $depth messages, expected $2"
}

# Runs one consumer on the filled queue until it is empty; leaves R_* variables for the report.
# Sets CONSUMER_PID (the process measured and signalled) and CONSUMER_LOG.
start_sqs_consumer() {
  node "$ROOT/bench/peer_consumer.mjs" --prefix "$PEER_PREFIX" --queue-url "${QUEUE_URL[$PHASE_Q]}" \
    --endpoint "http://127.0.0.1:$PROXY_PORT" --batch-size "$BATCH_SIZE" --wait-time "$WAIT_SECONDS" --handler "$PEER_HANDLER" \
    --ready-file "$WORK/peer.ready" >"$CONSUMER_LOG" 2>"$CONSUMER_LOG.err" &
  CONSUMER_PID=$!
  PIDS+=("$CONSUMER_PID")
}
start_taskpipe() {
  "$TASKPIPE" consume --config "$WORK/bench-$PHASE_Q.json" --log-level warn >"$CONSUMER_LOG" 2>"$CONSUMER_LOG.err" &
  CONSUMER_PID=$!
  PIDS+=("$CONSUMER_PID")
}

# SIGTERM, then waits up to 40 s for the consumer; sets STOP_RC.
stop_consumer() {  # NAME
  kill -TERM "$CONSUMER_PID"
  for _ in $(seq 400); do kill -0 "$CONSUMER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$CONSUMER_PID" 2>/dev/null && { tail -5 "$CONSUMER_LOG.err" >&2; die "$1 did not stop within 40 s of SIGTERM"; }
  STOP_RC=0
  wait "$CONSUMER_PID" || STOP_RC=$?
}

PHASE_Q=
declare -A R_WALL R_RATE R_RATE_RX R_CPU R_CPU_K R_RSS R_REQ R_REQ_MSG R_ACTIONS R_SERVER_K R_PROXY_K R_LOAD_BEFORE R_LOAD_AFTER R_NOTES

run_phase() {  # NAME (sqs-consumer | taskpipe) QUEUE (a key of QUEUE_URL) COUNT
  local name=$1 q=$2 count=$3 watch_pid started empty_at cpu rss c server_before proxy_before deadline first_rx
  echo "[$name] filling queue $q with $count messages ..." >&2
  fill_queue "$q" "$count"
  PHASE_Q=$q
  R_NOTES[$name]=
  rm -f "$WORK/watch.json" "$WORK/watch.json.ready" "$WORK/peer.ready"
  node -e "$WATCHER_JS" "$FAUXQS_PORT" "${QUEUE_URL[$q]}" "$WORK/watch.json" "$WATCH_INTERVAL_MS" 2>"$WORK/watch-$name.err" &
  watch_pid=$!
  PIDS+=("$watch_pid")
  wait_ready watcher "$watch_pid" "$WORK/watch.json.ready" "$WORK/watch-$name.err"
  sleep 1  # let the machine settle after the send and the watcher's start-up
  R_LOAD_BEFORE[$name]=$(load_average)
  reset_counts
  server_before=$(proc_cpu_seconds "$FAUXQS_PID")
  proxy_before=$(proc_cpu_seconds "$PROXY_PID")
  CONSUMER_LOG=$WORK/consumer-$name.log
  echo "[$name] consuming (load average ${R_LOAD_BEFORE[$name]}) ..." >&2
  started=$(now_ms)
  case "$name" in
    sqs-consumer) start_sqs_consumer ;;
    taskpipe) start_taskpipe ;;
  esac
  deadline=$(( $(date +%s) + DRAIN_TIMEOUT ))
  while [[ ! -s $WORK/watch.json ]]; do
    kill -0 "$CONSUMER_PID" 2>/dev/null || { cat "$CONSUMER_LOG" "$CONSUMER_LOG.err" >&2; die "$name exited before the queue was empty"; }
    kill -0 "$watch_pid" 2>/dev/null || [[ -s $WORK/watch.json ]] || { cat "$WORK/watch-$name.err" >&2; die "the drain watcher failed"; }
    (( $(date +%s) < deadline )) || die "$name: the queue was not empty after DRAIN_TIMEOUT=${DRAIN_TIMEOUT}s ($(queue_depth "${QUEUE_URL[$q]}") left)"
    sleep 0.05
  done
  # The queue is empty: measure the live process before stopping it.
  cpu=$(proc_cpu_seconds "$CONSUMER_PID")
  rss=$(proc_peak_rss_kib "$CONSUMER_PID")
  c=$(counts '?times=1')
  R_SERVER_K[$name]=$(awk -v a="$server_before" -v b="$(proc_cpu_seconds "$FAUXQS_PID")" -v m="$count" 'BEGIN { printf "%.3f", (b - a) * 1000 / m }')
  R_PROXY_K[$name]=$(awk -v a="$proxy_before" -v b="$(proc_cpu_seconds "$PROXY_PID")" -v m="$count" 'BEGIN { printf "%.3f", (b - a) * 1000 / m }')
  R_LOAD_AFTER[$name]=$(load_average)
  empty_at=$(jq -er .empty_at_ms "$WORK/watch.json") || die "bad watcher output"
  first_rx=$(jq -r '.receive_times | min // empty' <<<"$c")
  stop_consumer "$name"
  check_no_errors "$name"

  R_WALL[$name]=$(awk -v a="$started" -v b="$empty_at" 'BEGIN { printf "%.3f", (b - a) / 1000 }')
  R_RATE[$name]=$(awk -v m="$count" -v s="${R_WALL[$name]}" 'BEGIN { printf "%.0f", m / s }')
  R_RATE_RX[$name]=$(awk -v m="$count" -v a="${first_rx:-$started}" -v b="$empty_at" 'BEGIN { printf "%.0f", m * 1000 / (b - a) }')
  R_CPU[$name]=$cpu
  R_CPU_K[$name]=$(awk -v c="$cpu" -v m="$count" 'BEGIN { printf "%.3f", c * 1000 / m }')
  R_RSS[$name]=$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')
  R_REQ[$name]=$(jq .total <<<"$c")
  R_REQ_MSG[$name]=$(awk -v r="${R_REQ[$name]}" -v m="$count" 'BEGIN { printf "%.3f", r / m }')
  R_ACTIONS[$name]=$(jq -r '[.actions | to_entries | sort_by(-.value.requests)[] |
      "\(.key) \(.value.requests)" + (if .value.entries > 0 then " (\(.value.entries) entries)" else "" end)
      + (if .key == "ReceiveMessage" then " (\(.value.messages) messages, \(.value.empty) empty)" else "" end)] | join(", ")' <<<"$c")

  # Every message processed, none lost, no failure.
  case "$name" in
    sqs-consumer)
      (( STOP_RC == 0 )) || { cat "$CONSUMER_LOG.err" >&2; die "sqs-consumer exited with status $STOP_RC after SIGTERM"; }
      local out handled processed errors
      out=$(tail -1 "$CONSUMER_LOG")
      handled=$(jq -er .handled <<<"$out") && processed=$(jq -er .processed <<<"$out") && errors=$(jq -er .errors <<<"$out") ||
        { cat "$CONSUMER_LOG" "$CONSUMER_LOG.err" >&2; die "sqs-consumer: no final counts line"; }
      (( errors == 0 )) || { jq -r '.error_samples[]' <<<"$out" >&2; die "sqs-consumer reported $errors error events"; }
      (( processed == count )) || die "messages lost: sqs-consumer deleted $processed of $count ($handled handled)"
      (( handled == count )) || R_NOTES[$name]+="$handled messages handled for $count messages (redeliveries); "
      # On Node 20 the AWS SDK prints a NodeVersionSupportWarning (support ends in January 2027).
      if grep -q . "$CONSUMER_LOG.err"; then
        R_NOTES[$name]+="stderr: $(grep -c . "$CONSUMER_LOG.err") lines, the first: $(grep -m1 . "$CONSUMER_LOG.err"); "
      fi
      ;;
    taskpipe)
      (( STOP_RC == 0 )) || { tail -5 "$CONSUMER_LOG.err" >&2; die "taskpipe consume exited with status $STOP_RC after SIGTERM"; }
      local deleted received
      deleted=$(jq '.actions.DeleteMessageBatch.entries // 0' <<<"$c")
      received=$(jq '.actions.ReceiveMessage.messages // 0' <<<"$c")
      (( deleted >= count )) || die "messages lost: taskpipe deleted $deleted of $count"
      (( deleted == count )) || R_NOTES[$name]+="$deleted delete entries for $count messages; "
      (( received == count )) || R_NOTES[$name]+="$received messages received for $count (redeliveries); "
      if grep -q . "$CONSUMER_LOG.err" "$CONSUMER_LOG"; then
        R_NOTES[$name]+="$(cat "$CONSUMER_LOG" "$CONSUMER_LOG.err" | wc -l) warning/error log lines, e.g. $(head -1 "$CONSUMER_LOG.err"); "
      fi
      ;;
  esac
  (( $(queue_depth "${QUEUE_URL[$q]}") == 0 )) || die "$name: the queue is not empty after the consumer stopped"
}

if (( WARMUP_MESSAGES > 0 )); then
  for phase in $ORDER; do run_phase "$phase" "warm-$phase" "$WARMUP_MESSAGES"; done  # figures overwritten below
fi
for phase in $ORDER; do run_phase "$phase" "$phase" "$MESSAGES"; done

# --- report -----------------------------------------------------------------------------------------
P=sqs-consumer
T=taskpipe
ratio() { awk -v t="$1" -v p="$2" 'BEGIN { printf "%.3f", t / p }'; }
cpu_ratio=$(ratio "${R_CPU_K[$T]}" "${R_CPU_K[$P]}")
rss_ratio=$(ratio "${R_RSS[$T]}" "${R_RSS[$P]}")
thr_ratio=$(ratio "${R_RATE[$T]}" "${R_RATE[$P]}")
met() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { ok = (op == "<=") ? v <= t : v >= t; print ok ? "met" : "MISSED" }'; }

echo
echo "$MESSAGES messages, pre-filled, on fauxqs $FAUXQS_VERSION (127.0.0.1, JSON protocol, behind the counting proxy); order: $ORDER, after a warm-up of $WARMUP_MESSAGES each"
echo "  sqs-consumer $SQS_CONSUMER_VERSION + @aws-sdk/client-sqs $CLIENT_SQS_VERSION on Node $(node --version | tr -d v): batchSize $BATCH_SIZE, waitTimeSeconds $WAIT_SECONDS, $( [[ $PEER_HANDLER == message ]] && echo "handleMessage returning the message" || echo "handleMessageBatch returning the messages")"
echo "    ($(sdk_versions))"
echo "  taskpipe $("$TASKPIPE" --version | awk '{ print $NF }') ($TASKPIPE): consume, $WORKERS workers, $POLLERS poller(s), batch_size $BATCH_SIZE, wait_time ${WAIT_SECONDS}s, log handler at --log-level warn"
echo
printf '  %-13s %10s %12s %12s %14s %10s %10s\n' consumer "msgs/s" "msgs/s (rx)" "CPU s/1000" "peak RSS MiB" "req/msg" "wall s"
for n in $P $T; do
  printf '  %-13s %10s %12s %12s %14s %10s %10s\n' "$n" "${R_RATE[$n]}" "${R_RATE_RX[$n]}" "${R_CPU_K[$n]}" "${R_RSS[$n]}" "${R_REQ_MSG[$n]}" "${R_WALL[$n]}"
done
printf '  %-13s %10s %12s %12s %14s %10s\n' "taskpipe/peer" "$thr_ratio" "$(ratio "${R_RATE_RX[$T]}" "${R_RATE_RX[$P]}")" "$cpu_ratio" "$rss_ratio" "$(ratio "${R_REQ_MSG[$T]}" "${R_REQ_MSG[$P]}")"
echo "  (msgs/s: from the consumer's start; (rx): from its first ReceiveMessage; both to the queue seen empty)"
for n in $P $T; do
  echo "  $n: requests ${R_ACTIONS[$n]}; CPU ${R_CPU[$n]} s; fauxqs ${R_SERVER_K[$n]} s/1000 msgs, proxy ${R_PROXY_K[$n]} s/1000 msgs (in no figure);" \
    "load average ${R_LOAD_BEFORE[$n]} before, ${R_LOAD_AFTER[$n]} after"
  [[ -z ${R_NOTES[$n]:-} ]] || echo "    note: ${R_NOTES[$n]}"
done
echo
for n in $P $T; do
  key=${n//-/_}
  echo "${key}_messages_per_sec: ${R_RATE[$n]}"
  echo "${key}_cpu_s_per_1000_messages: ${R_CPU_K[$n]}"
  echo "${key}_peak_rss_mib: ${R_RSS[$n]}"
  echo "${key}_sqs_requests_per_message: ${R_REQ_MSG[$n]}"
done
echo "cpu_ratio_vs_sqs_consumer: $cpu_ratio (target <= 0.2: $(met "$cpu_ratio" '<=' 0.2))"
echo "rss_ratio_vs_sqs_consumer: $rss_ratio (target <= 0.33: $(met "$rss_ratio" '<=' 0.33))"
echo "throughput_ratio_vs_sqs_consumer: $thr_ratio (target >= 1.0: $(met "$thr_ratio" '>=' 1.0))"

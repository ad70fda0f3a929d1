#!/usr/bin/env bash
# bench/sqs_bench.sh: issue 5's benchmark. Runs `taskpipe send` (producer) and `taskpipe consume`
# against an SQS server on loopback and reports what SQS would bill and what the process costs.
#
# Server: fauxqs 1.9.2 (npm; an SQS emulator on Node, JSON protocol only), started through its
# buildApp API on 127.0.0.1 by bench/fauxqs_server.mjs and installed on first use into the
# git-ignored .cache/npm/fauxqs. Not moto: moto's ReceiveMessage slows down with the queue's
# length (about 0.5 s a call with 1,000 queued), fine for correctness, useless for volume.
# Every taskpipe request goes through bench/counting_proxy.mjs, which forwards it unchanged and
# counts it by X-Amz-Target action: the figures are counted at the HTTP layer, as SQS bills them.
# The script's own requests (CreateQueue, and its GetQueueAttributes polls, which go to fauxqs
# directly) are not counted.
#
# Figures (all from fauxqs, same run):
#   sqs_requests_per_message   steady load: a consumer running while `taskpipe send --job` puts
#                              MESSAGES tasks on the queue (TASKS_PER_SEND a send), until the queue
#                              is empty and every message is deleted. Every proxied request of the
#                              producer and the consumer (GetQueueUrl, SendMessageBatch,
#                              ReceiveMessage, DeleteMessageBatch, ...), divided by the messages
#                              processed. Target <= 0.35.
#   idle_receives_per_min      an empty queue, one `taskpipe consume` (wait_time 20s, WORKERS
#                              workers) for IDLE_SECONDS: ReceiveMessage calls a minute per poller,
#                              from the spacing of the calls ((calls - 1) / (last start - first
#                              start)), so that the call at t = 0 does not inflate a short window.
#                              Target <= 3.1.
#   cpu_ms_per_1000_messages   user + system CPU of every taskpipe process of the steady-load phase
#                              (each send and the consumer, from /usr/bin/time, so all threads and
#                              start-up are in), per 1,000 messages processed.
# Baselines (measured or derived in the same run; shown as ratios, these machines are noisy):
#   requests    0.3 a message: perfect batching, i.e. one SendMessageBatch, one ReceiveMessage and
#               one DeleteMessageBatch per 10 messages. Ratio 1.00 is as good as SQS allows.
#   idle        3.0 receives a minute: one 20 s long poll after another, nothing in between.
#   cpu         the fauxqs server process's CPU over the same steady-load phase, per 1,000
#               messages. It handles the other end of every one of those requests (parses it, stores
#               or hands out the messages, writes the answer), on the same machine at the same
#               time, so it moves with the machine's load as taskpipe's figure does. It is a
#               reference for noise, not a target: ratio = taskpipe CPU / fauxqs CPU.
#
# The steady-load consumer runs at --log-level info (its final "stopped: N received, N succeeded"
# line is how the script checks that no message was lost), so the log handler's line and the
# result line per task (to a file) are part of the CPU figure.
#
# Before the figures, a protocol check: a few tasks that succeed and a few whose handler fails,
# so that fauxqs sees each request taskpipe makes (SendMessageBatch with MessageAttributes,
# ReceiveMessage asking for All attributes, DeleteMessageBatch, ChangeMessageVisibilityBatch);
# any non-2xx answer is printed, request and response, and fails the run.
#
# Usage: bench/sqs_bench.sh
# Environment (defaults):
#   TASKPIPE=build/taskpipe  MESSAGES=5000  TASKS_PER_SEND=1000  WORKERS=16
#   IDLE_SECONDS=65 (>= 21; e.g. 25 for a smoke test)  LOAD_TIMEOUT=600 (seconds)
#   SAMPLES_FILE=  (a path: the first request and response of each action in the protocol check)
# Needs node + npm (Node 20), curl, jq, GNU /usr/bin/time. Exit 0 when every check passed, 1 when
# anything failed (the message says what), 2 on bad settings.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TASKPIPE=${TASKPIPE:-$ROOT/build/taskpipe}
MESSAGES=${MESSAGES:-5000}
TASKS_PER_SEND=${TASKS_PER_SEND:-1000}
WORKERS=${WORKERS:-16}
IDLE_SECONDS=${IDLE_SECONDS:-65}
LOAD_TIMEOUT=${LOAD_TIMEOUT:-600}
IDLE_WAIT_SECONDS=20   # queue.wait_time of the idle consumer: SQS's longest long poll
FAUXQS_VERSION=1.9.2
NPM_PREFIX=$ROOT/.cache/npm/fauxqs

die() { echo "sqs_bench: $*" >&2; exit 1; }
usage_error() { echo "sqs_bench: $*" >&2; exit 2; }

for v in MESSAGES TASKS_PER_SEND WORKERS IDLE_SECONDS LOAD_TIMEOUT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || usage_error "$v must be a positive integer, got '${!v}'"
done
(( MESSAGES % TASKS_PER_SEND == 0 )) || usage_error "MESSAGES ($MESSAGES) must be a multiple of TASKS_PER_SEND ($TASKS_PER_SEND)"
(( IDLE_SECONDS > IDLE_WAIT_SECONDS )) || usage_error "IDLE_SECONDS must be over $IDLE_WAIT_SECONDS (one long poll), got $IDLE_SECONDS"
[[ -x $TASKPIPE ]] || usage_error "no taskpipe binary at $TASKPIPE (build it, or set TASKPIPE)"
for tool in node npm curl jq; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
[[ -x /usr/bin/time ]] || die "GNU time (/usr/bin/time) is not installed"

# --- processes: everything started here is killed on exit ----------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sqs_bench.XXXXXX")
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

# Waits for a launcher's ready file ({"port": N, "pid": P}); fails if the process died first.
wait_ready() {  # NAME PID FILE LOG
  for _ in $(seq 150); do
    [[ -s $3 ]] && return 0
    kill -0 "$2" 2>/dev/null || { cat "$4" >&2; die "$1 exited before it was listening"; }
    sleep 0.1
  done
  cat "$4" >&2
  die "$1 did not start listening within 15 s"
}

# CPU seconds (user + system, all threads) a live process has used so far.
proc_cpu_seconds() {  # PID
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat"
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
    echo "sqs_bench: fauxqs rejected requests during the $1 phase:" >&2
    jq -r '.errors[] | "  \(.action) -> HTTP \(.status)\n    request:  \(.request)\n    response: \(.response)"' <<<"$c" >&2
    exit 1
  fi
}

# Starts `taskpipe consume` under /usr/bin/time; sets CONSUMER_PID (taskpipe itself, which gets
# the signals) and waits for its "consumer started" line.
start_consumer() {  # CONFIG LOG TIMEFILE
  /usr/bin/time -f '%e %U %S' -o "$3" "$TASKPIPE" consume --config "$1" --log-level info >"$2" 2>&1 &
  local time_pid=$!
  PIDS+=("$time_pid")
  CONSUMER_PID=
  for _ in $(seq 100); do
    CONSUMER_PID=$(pgrep -P "$time_pid" || true)
    [[ -n $CONSUMER_PID ]] && grep -q 'consumer started' "$2" && break
    kill -0 "$time_pid" 2>/dev/null || { cat "$2" >&2; die "taskpipe consume exited at start"; }
    sleep 0.1
  done
  if [[ -z $CONSUMER_PID ]] || ! grep -q 'consumer started' "$2"; then cat "$2" >&2; die "taskpipe consume did not start"; fi
  PIDS+=("$CONSUMER_PID")
  CONSUMER_TIME_PID=$time_pid
}

# SIGTERM (drain), then waits for the consumer; fails when it does not exit 0 within 40 s.
stop_consumer() {  # LOG
  kill -TERM "$CONSUMER_PID"
  for _ in $(seq 400); do kill -0 "$CONSUMER_TIME_PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$CONSUMER_TIME_PID" 2>/dev/null && { tail -5 "$1" >&2; die "taskpipe consume did not stop within 40 s of SIGTERM"; }
  local rc=0
  wait "$CONSUMER_TIME_PID" || rc=$?
  (( rc == 0 )) || { tail -5 "$1" >&2; die "taskpipe consume exited with status $rc after SIGTERM"; }
}

# "stopped: R received, S succeeded, F failed, ..." -> the number before WORD.
stopped_field() {  # LOG WORD
  grep -o '\[taskpipe\] stopped: .*' "$1" | tail -1 | grep -oE "[0-9]+ $2" | grep -oE '^[0-9]+' ||
    die "no final 'stopped:' line in the consumer's log ($1)"
}

# User + system seconds from a /usr/bin/time -f '%e %U %S' file (its last line).
time_cpu_seconds() { tail -1 "$1" | awk 'NF == 3 { print $2 + $3; ok = 1 } END { exit !ok }' || die "bad /usr/bin/time output in $1"; }

# --- fauxqs and the counting proxy -----------------------------------------------------------------
if [[ $(jq -r .version "$NPM_PREFIX/node_modules/fauxqs/package.json" 2>/dev/null) != "$FAUXQS_VERSION" ]]; then
  echo "installing fauxqs@$FAUXQS_VERSION into ${NPM_PREFIX#"$ROOT"/} ..." >&2
  npm install --prefix "$NPM_PREFIX" --no-audit --no-fund --loglevel=error "fauxqs@$FAUXQS_VERSION" >&2 ||
    die "npm install fauxqs@$FAUXQS_VERSION failed"
fi

node "$ROOT/bench/fauxqs_server.mjs" --prefix "$NPM_PREFIX" --ready-file "$WORK/fauxqs.json" >"$WORK/fauxqs.log" 2>&1 &
PIDS+=($!)
wait_ready fauxqs $! "$WORK/fauxqs.json" "$WORK/fauxqs.log"
FAUXQS_PORT=$(jq -r .port "$WORK/fauxqs.json")
FAUXQS_PID=$(jq -r .pid "$WORK/fauxqs.json")

node "$ROOT/bench/counting_proxy.mjs" --upstream "127.0.0.1:$FAUXQS_PORT" --ready-file "$WORK/proxy.json" >"$WORK/proxy.log" 2>&1 &
PIDS+=($!)
wait_ready "counting proxy" $! "$WORK/proxy.json" "$WORK/proxy.log"
PROXY_PORT=$(jq -r .port "$WORK/proxy.json")
PROXY_PID=$(jq -r .pid "$WORK/proxy.json")

# Queues are created through the proxy, so their URLs carry its address (fauxqs finds a queue by
# its URL whichever port a request comes in on).
declare -A QUEUE_URL
for q in check load idle; do
  QUEUE_URL[$q]=$(sqs_call "$PROXY_PORT" CreateQueue "{\"QueueName\": \"taskpipe-bench-$q\"}" | jq -er .QueueUrl) ||
    die "CreateQueue taskpipe-bench-$q: no QueueUrl"
done

# taskpipe talks to the proxy, with dummy credentials and nothing from this user's ~/.aws.
mkdir "$WORK/home"
export HOME=$WORK/home AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 \
  AWS_EC2_METADATA_DISABLED=true AWS_ENDPOINT_URL_SQS=http://127.0.0.1:$PROXY_PORT
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL AWS_DEFAULT_REGION AWS_SHARED_CREDENTIALS_FILE AWS_CONFIG_FILE \
  AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_CONTAINER_CREDENTIALS_FULL_URI 2>/dev/null || true

write_config() {  # FILE QUEUE JOBS_JSON
  cat >"$1" <<EOF
{
  "queue": { "backend": "sqs", "name": "taskpipe-bench-$2", "protocol": "json",
             "wait_time": "${IDLE_WAIT_SECONDS}s", "visibility_timeout": "30s" },
  "consumer": { "workers": $WORKERS, "batch_size": 10, "shutdown_grace": "10s" },
  "jobs": $3
}
EOF
  "$TASKPIPE" check --config "$1" >/dev/null || die "taskpipe check rejects the generated config $1"
}

# --- 1. protocol check: every request taskpipe makes, answered 2xx by fauxqs ------------------------
write_config "$WORK/check.json" check '[
    { "name": "ok", "tasks": ["a", "b", "c"], "handler": { "type": "log" } },
    { "name": "fail", "tasks": ["x", "y", "z"], "handler": { "type": "exec", "command": ["false"] } } ]'
reset_counts
"$TASKPIPE" send --config "$WORK/check.json" --job ok >"$WORK/check-send.log" 2>&1 || { cat "$WORK/check-send.log" >&2; die "taskpipe send (protocol check) failed"; }
"$TASKPIPE" send --config "$WORK/check.json" --job fail >>"$WORK/check-send.log" 2>&1 || { cat "$WORK/check-send.log" >&2; die "taskpipe send (protocol check) failed"; }
start_consumer "$WORK/check.json" "$WORK/check-consume.log" "$WORK/check-consume.time"
# Wait until the 3 good tasks are deleted and the 3 failures put back with a retry visibility.
for _ in $(seq 300); do
  c=$(counts '')
  jq -e '(.actions.DeleteMessageBatch.entries // 0) >= 3 and (.actions.ChangeMessageVisibilityBatch.entries // 0) >= 3' \
    <<<"$c" >/dev/null && break
  sleep 0.1
done
stop_consumer "$WORK/check-consume.log"
check_no_errors "protocol check"
c=$(counts '')
jq -e '(.actions.DeleteMessageBatch.entries // 0) >= 3 and (.actions.ChangeMessageVisibilityBatch.entries // 0) >= 3' <<<"$c" >/dev/null ||
  { jq . <<<"$c" >&2; die "protocol check: within 30 s taskpipe did not delete 3 messages and put back 3 failed ones"; }
samples=$(curl -sS --fail "http://127.0.0.1:$PROXY_PORT/__samples")
[[ -z ${SAMPLES_FILE:-} ]] || jq . <<<"$samples" >"$SAMPLES_FILE"
# taskpipe sends its envelope's MessageAttributes; fauxqs must hand them back on receive (taskpipe
# also checks their MD5 on both sides, so a mismatch would have failed the sends or the receives).
if jq -e '.SendMessageBatch.request | fromjson | [.Entries[] | has("MessageAttributes")] | any' <<<"$samples" >/dev/null; then
  jq -e '.ReceiveMessage.response | fromjson | [.Messages[]? | has("MessageAttributes")] | any' <<<"$samples" >/dev/null ||
    { jq . <<<"$samples" >&2; die "protocol check: messages were sent with MessageAttributes, received without"; }
  ATTRIBUTES_CHECKED="MessageAttributes sent and received back"
else
  ATTRIBUTES_CHECKED="no MessageAttributes sent"
fi
PROTOCOL_CHECKED=$(jq -r '[.actions | to_entries[] | "\(.key) \(.value.requests)"] | join(", ")' <<<"$c")

# --- 2. steady load ---------------------------------------------------------------------------------
seq 1 "$TASKS_PER_SEND" | awk '{ printf "{\"n\": %d, \"payload\": \"benchmark task number %d\"}\n", $1, $1 }' >"$WORK/tasks.txt"
write_config "$WORK/load.json" load '[ { "name": "bench", "tasks_file": "tasks.txt", "handler": { "type": "log" } } ]'
reset_counts
server_cpu_before=$(proc_cpu_seconds "$FAUXQS_PID")
proxy_cpu_before=$(proc_cpu_seconds "$PROXY_PID")
start_consumer "$WORK/load.json" "$WORK/load-consume.log" "$WORK/load-consume.time"
load_started=$(date +%s.%N)
sent=0
send_cpu=0
for i in $(seq $((MESSAGES / TASKS_PER_SEND))); do
  /usr/bin/time -f '%e %U %S' -o "$WORK/send-$i.time" "$TASKPIPE" send --config "$WORK/load.json" --job bench \
    >"$WORK/send-$i.log" 2>&1 || { cat "$WORK/send-$i.log" >&2; die "taskpipe send #$i failed"; }
  n=$(grep -oE '^sent [0-9]+ messages?' "$WORK/send-$i.log" | grep -oE '[0-9]+') || { cat "$WORK/send-$i.log" >&2; die "taskpipe send #$i: no 'sent N messages' line"; }
  sent=$((sent + n))
  send_cpu=$(awk -v a="$send_cpu" -v b="$(time_cpu_seconds "$WORK/send-$i.time")" 'BEGIN { print a + b }')
done
(( sent == MESSAGES )) || die "taskpipe send reported $sent messages sent, expected $MESSAGES"
# Until every message has been processed and deleted (nothing visible, in flight or delayed).
deadline=$(( $(date +%s) + LOAD_TIMEOUT ))
while true; do
  depth=$(queue_depth "${QUEUE_URL[load]}")
  (( depth > 0 )) || break
  kill -0 "$CONSUMER_PID" 2>/dev/null || { tail -5 "$WORK/load-consume.log" >&2; die "taskpipe consume died under load"; }
  (( $(date +%s) < deadline )) || die "the queue was not empty after LOAD_TIMEOUT=${LOAD_TIMEOUT}s ($depth left)"
  sleep 0.2
done
load_seconds=$(awk -v a="$load_started" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
stop_consumer "$WORK/load-consume.log"
server_cpu=$(awk -v a="$server_cpu_before" -v b="$(proc_cpu_seconds "$FAUXQS_PID")" 'BEGIN { print b - a }')
proxy_cpu=$(awk -v a="$proxy_cpu_before" -v b="$(proc_cpu_seconds "$PROXY_PID")" 'BEGIN { print b - a }')
check_no_errors "steady-load"
load_counts=$(counts '')
consume_cpu=$(time_cpu_seconds "$WORK/load-consume.time")
received=$(stopped_field "$WORK/load-consume.log" received)
succeeded=$(stopped_field "$WORK/load-consume.log" succeeded)
(( succeeded == MESSAGES )) || die "messages lost: $MESSAGES sent, the consumer's 'stopped:' line says $succeeded succeeded ($received received)"
deleted=$(jq '.actions.DeleteMessageBatch.entries // 0' <<<"$load_counts")
(( deleted == MESSAGES )) || echo "sqs_bench: note: $deleted delete entries for $MESSAGES messages" >&2
(( received == MESSAGES )) || echo "sqs_bench: note: $received receives for $MESSAGES messages (redeliveries)" >&2

# --- 3. idle ----------------------------------------------------------------------------------------
write_config "$WORK/idle.json" idle '[ { "name": "bench", "handler": { "type": "log" } } ]'
depth=$(queue_depth "${QUEUE_URL[idle]}")
(( depth == 0 )) || die "the idle queue is not empty"
reset_counts
start_consumer "$WORK/idle.json" "$WORK/idle-consume.log" "$WORK/idle-consume.time"
pollers=$(grep -oE 'consumer starting: .*[0-9]+ poller' "$WORK/idle-consume.log" | grep -oE '[0-9]+ poller' | grep -oE '[0-9]+') ||
  die "no 'N poller(s)' in the consumer's start line"
idle_cpu_before=$(proc_cpu_seconds "$CONSUMER_PID")
sleep "$IDLE_SECONDS" &   # in the background so that Ctrl-C stops the script at once
PIDS+=($!)
wait $!
idle_cpu=$(awk -v a="$idle_cpu_before" -v b="$(proc_cpu_seconds "$CONSUMER_PID")" 'BEGIN { print b - a }')
idle_counts=$(counts '?times=1')
stop_consumer "$WORK/idle-consume.log"
check_no_errors "idle"
idle_receives=$(jq '.receive_times | length' <<<"$idle_counts")
(( idle_receives >= 2 )) || die "only $idle_receives ReceiveMessage calls in ${IDLE_SECONDS}s: cannot measure their spacing"
idle_span=$(jq '(.receive_times | max) - (.receive_times | min) | . / 1000' <<<"$idle_counts")
idle_nonempty=$(jq '.actions.ReceiveMessage.messages // 0' <<<"$idle_counts")
(( idle_nonempty == 0 )) || die "the idle consumer received $idle_nonempty messages from an empty queue"

# --- report -----------------------------------------------------------------------------------------
total_requests=$(jq .total <<<"$load_counts")
req_per_msg=$(awk -v r="$total_requests" -v m="$succeeded" 'BEGIN { printf "%.3f", r / m }')
idle_rate=$(awk -v n="$idle_receives" -v s="$idle_span" -v p="$pollers" 'BEGIN { printf "%.2f", (n - 1) * 60 / s / p }')
idle_raw=$(awk -v n="$idle_receives" -v s="$IDLE_SECONDS" -v p="$pollers" 'BEGIN { printf "%.2f", n * 60 / s / p }')
taskpipe_cpu=$(awk -v a="$send_cpu" -v b="$consume_cpu" 'BEGIN { print a + b }')
cpu_per_k=$(awk -v c="$taskpipe_cpu" -v m="$succeeded" 'BEGIN { printf "%.1f", c * 1e6 / m }')
server_per_k=$(awk -v c="$server_cpu" -v m="$succeeded" 'BEGIN { printf "%.1f", c * 1e6 / m }')
proxy_per_k=$(awk -v c="$proxy_cpu" -v m="$succeeded" 'BEGIN { printf "%.1f", c * 1e6 / m }')

echo
echo "steady load: $succeeded messages ($((MESSAGES / TASKS_PER_SEND)) sends of $TASKS_PER_SEND), $WORKERS workers, log handler;" \
  "queue empty after $(printf '%.1f' "$load_seconds") s ($(awk -v m="$succeeded" -v s="$load_seconds" 'BEGIN { printf "%.0f", m / s }') msg/s)"
printf '  %-30s %9s %9s %10s %13s\n' action requests entries "msgs/call" "req/message"
jq -r --argjson m "$succeeded" '.actions | to_entries | sort_by(-.value.requests)[] |
    [.key, .value.requests, .value.entries,
     (if .key == "ReceiveMessage" then (.value.messages / ([.value.requests, 1] | max))
      elif .value.entries > 0 then (.value.entries / .value.requests) else "-" end),
     (.value.requests / $m)] | @tsv' <<<"$load_counts" |
  while IFS=$'\t' read -r action requests entries per_call per_msg; do
    [[ $per_call == - ]] || per_call=$(printf '%.2f' "$per_call")
    printf '  %-30s %9d %9d %10s %13.4f\n' "$action" "$requests" "$entries" "$per_call" "$per_msg"
  done
printf '  %-30s %9d %9s %10s %13.4f\n' total "$total_requests" "" "" "$req_per_msg"
echo "  empty receives: $(jq '.actions.ReceiveMessage.empty // 0' <<<"$load_counts"); consumer: $received received, $succeeded succeeded"
printf '  CPU: taskpipe %.3f s (sends %.3f, consumer %.3f), fauxqs %.3f s, counting proxy %.3f s (%s ms/1000 messages, not in any figure)\n' \
  "$taskpipe_cpu" "$send_cpu" "$consume_cpu" "$server_cpu" "$proxy_cpu" "$proxy_per_k"
echo "idle: ${IDLE_SECONDS} s on an empty queue, wait_time ${IDLE_WAIT_SECONDS}s, $WORKERS workers, $pollers poller(s):" \
  "$idle_receives ReceiveMessage calls, $(printf '%.1f' "$idle_span") s from first to last ($idle_raw a minute per poller counting the window)," \
  "consumer CPU $(awk -v c="$idle_cpu" -v s="$IDLE_SECONDS" 'BEGIN { printf "%.1f", c * 1000 * 60 / s }') ms a minute (/proc, 10 ms ticks)"
echo "protocol check: fauxqs answered 2xx to every request ($PROTOCOL_CHECKED); $ATTRIBUTES_CHECKED"
echo
echo "server: fauxqs $FAUXQS_VERSION (JSON protocol) on 127.0.0.1, requests counted by a proxy in front of it; every figure and baseline below is from this server, this run"
echo "sqs_requests_per_message: $req_per_msg"
echo "idle_receives_per_min: $idle_rate"
echo "cpu_ms_per_1000_messages: $cpu_per_k"
awk -v r="$req_per_msg" 'BEGIN { printf "baseline_requests_per_message: 0.300 (perfect batching: 1 send batch + 1 receive + 1 delete batch per 10 messages); ratio %.2f\n", r / 0.3 }'
awk -v r="$idle_rate" -v w="$IDLE_WAIT_SECONDS" 'BEGIN { b = 60 / w; printf "baseline_idle_receives_per_min: %.2f (back-to-back %d s long polls); ratio %.2f\n", b, w, r / b }'
awk -v t="$cpu_per_k" -v s="$server_per_k" 'BEGIN { printf "baseline_server_cpu_ms_per_1000_messages: %s (the fauxqs process, same phase); ratio taskpipe/fauxqs %.2f\n", s, t / s }'

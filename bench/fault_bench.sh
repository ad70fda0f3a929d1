#!/usr/bin/env bash
# bench/fault_bench.sh: the "Faults" benchmark. Runs tasks end to end, producer -> fault proxy ->
# SQS server -> consumer, as real taskpipe processes, and checks that none is lost and no process
# crashes; duplicates are allowed (SQS is at-least-once) and reported.
#
# Server: its own moto_server on a free loopback port (like scripts/test.sh). Every taskpipe request
# goes through bench/fault_proxy.py (AWS_ENDPOINT_URL_SQS points at it); the script's own requests
# (CreateQueue, GetQueueAttributes with boto3) go to moto directly and are never faulted.
# Each task's handler is `exec` sh -c 'printf "%s\n" "$TASKPIPE_TASK" >> RESULTS' (a short O_APPEND
# write is atomic), so RESULTS has one line per handler run: distinct lines = tasks completed,
# the other lines = duplicates.
#
# Modes (the first argument; default "all"):
#   fault   TASKS tasks (distinct) with RATE faults of every kind (errors 500/503, throttling,
#           resets, stalls, truncated replies; before and after the server did the work).
#           `taskpipe send --job` enqueues them (it must exit 0), boto3 counts what arrived (more
#           than TASKS = a send whose reply was lost, reported as fault_send_duplicates), then one
#           `taskpipe consume` runs until RESULTS holds every task, and gets SIGTERM (exit 0).
#   kill    KILL_TASKS tasks, two consumers (handlers ~100 ms, queue visibility KILL_VISIBILITY s).
#           When a third of the tasks are done, consumer A is frozen (SIGSTOP), its running handlers
#           are listed and A and their process groups are SIGKILLed: a machine that died. Consumer
#           B must complete every task, A's in-flight ones after their visibility timeout.
#   drain   DRAIN_TASKS tasks, two consumers, visibility 60 s. Consumer A gets SIGTERM mid-run:
#           it must exit 0 (its running handlers finish), and B must complete everything within
#           DRAIN_LIMIT s of the signal: far less than the visibility timeout, so the messages A
#           had not started were released at once, not left to time out. When some are missing at
#           DRAIN_LIMIT, it waits out the visibility timeout to tell late (drain_tasks_late) from lost.
#
# Figures (name: value lines at the end): fault_tasks_completed, fault_duplicates,
# fault_send_duplicates, fault_crashes, fault_seconds, fault_proxy_requests, fault_proxy_faults,
# fault_proxy_<kind> (before+after), fault_proxy_<Action>_faults; kill_tasks_completed,
# kill_duplicates, kill_redelivered (tasks B ran with receive count > 1), kill_crashes,
# kill_seconds; drain_tasks_completed, drain_tasks_within_limit, drain_tasks_late, drain_duplicates,
# drain_crashes, drain_seconds_after_sigterm.
# "crashes" counts taskpipe processes that did not end as we asked: died by a signal we did not
# send, or exited non-zero (send), or not 0 after SIGTERM (consume).
#
# Usage: bench/fault_bench.sh [fault|kill|drain|all]
# Environment (defaults): TASKPIPE=build/taskpipe TASKS=1000 RATE=0.10 SEED=1 STALL_SECONDS=2
#   MIX= (fault_proxy.py's --mix; default every kind alike) WORKERS=8 VISIBILITY=10 TIMEOUT=600
#   KILL_TASKS=300 KILL_VISIBILITY=5 DRAIN_TASKS=200 DRAIN_LIMIT=20 KEEP=0 (1: keep the work folder)
# Needs moto_server, python3 with boto3, curl, jq. Exit 0 when every check passed, 1 when a task is
# missing or a process crashed (the message says which), 2 on bad settings.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TASKPIPE=${TASKPIPE:-$ROOT/build/taskpipe}
MODE=${1:-all}
TASKS=${TASKS:-1000}
RATE=${RATE:-0.10}
SEED=${SEED:-1}
STALL_SECONDS=${STALL_SECONDS:-2}
MIX=${MIX:-}
WORKERS=${WORKERS:-8}
VISIBILITY=${VISIBILITY:-10}
TIMEOUT=${TIMEOUT:-600}
KILL_TASKS=${KILL_TASKS:-300}
KILL_VISIBILITY=${KILL_VISIBILITY:-5}
DRAIN_TASKS=${DRAIN_TASKS:-200}
DRAIN_LIMIT=${DRAIN_LIMIT:-20}
KEEP=${KEEP:-0}

die() { echo "fault_bench: $*" >&2; exit 1; }
usage_error() { echo "fault_bench: $*" >&2; exit 2; }

case "$MODE" in fault | kill | drain | all) ;; *) usage_error "usage: $0 [fault|kill|drain|all]" ;; esac
for v in TASKS WORKERS VISIBILITY TIMEOUT KILL_TASKS KILL_VISIBILITY DRAIN_TASKS DRAIN_LIMIT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || usage_error "$v must be a positive integer, got '${!v}'"
done
[[ $RATE =~ ^(0(\.[0-9]+)?|1(\.0+)?)$ ]] || usage_error "RATE must be in [0, 1], got '$RATE'"
[[ -x $TASKPIPE ]] || usage_error "no taskpipe binary at $TASKPIPE (build it, or set TASKPIPE)"
for tool in moto_server python3 curl jq; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
python3 -c 'import boto3' 2>/dev/null || die "python3 cannot import boto3"

# --- processes: everything started here is killed on exit ----------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fault_bench.XXXXXX")
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [[ $KEEP == 1 ]]; then echo "fault_bench: work folder kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# --- moto ------------------------------------------------------------------------------------------
MOTO_PORT=$(free_port)
moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
PIDS+=("$MOTO_PID")
MOTO=http://127.0.0.1:$MOTO_PORT
for _ in $(seq 300); do
  curl -s -o /dev/null "$MOTO/" && break
  kill -0 "$MOTO_PID" 2>/dev/null || { cat "$WORK/moto.log" >&2; die "moto_server exited at start"; }
  sleep 0.1
done
curl -s -o /dev/null "$MOTO/" || die "moto_server did not answer within 30 s"

# boto3 straight to moto (never through the proxy): create a queue, count its messages.
sqs_py() {  # PYTHON_CODE ARGS... (sqs = the client, args = sys.argv[1:])
  python3 -c "import sys, boto3
sqs = boto3.client('sqs', endpoint_url='$MOTO', region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')
args = sys.argv[1:]
$1" "${@:2}"
}
create_queue() {  # NAME VISIBILITY_SECONDS -> URL
  sqs_py "print(sqs.create_queue(QueueName=args[0], Attributes={'VisibilityTimeout': args[1]})['QueueUrl'])" "$1" "$2" ||
    die "creating queue $1 with boto3 failed"
}
queue_depth() {  # URL -> visible + in flight + delayed
  sqs_py "a = sqs.get_queue_attributes(QueueUrl=args[0], AttributeNames=['All'])['Attributes']
print(sum(int(a[k]) for k in ('ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible', 'ApproximateNumberOfMessagesDelayed')))" "$1" ||
    die "GetQueueAttributes with boto3 failed"
}

# --- the proxy -------------------------------------------------------------------------------------
start_proxy() {  # NAME RATE -> sets PROXY_PORT
  local args=(--upstream "127.0.0.1:$MOTO_PORT" --listen-port 0 --ready-file "$WORK/$1-proxy.json" --rate "$2"
    --seed "$SEED" --stall-seconds "$STALL_SECONDS")
  [[ -z $MIX ]] || args+=(--mix "$MIX")
  python3 "$ROOT/bench/fault_proxy.py" "${args[@]}" >"$WORK/$1-proxy.log" 2>&1 &
  PIDS+=($!)
  local pid=$!
  for _ in $(seq 150); do
    [[ -s $WORK/$1-proxy.json ]] && break
    kill -0 "$pid" 2>/dev/null || { cat "$WORK/$1-proxy.log" >&2; die "fault_proxy.py exited at start"; }
    sleep 0.1
  done
  [[ -s $WORK/$1-proxy.json ]] || die "fault_proxy.py did not start listening within 15 s"
  PROXY_PORT=$(jq -r .port "$WORK/$1-proxy.json")
}
proxy_stats() { curl -sS --fail "http://127.0.0.1:$PROXY_PORT/__stats" || die "the fault proxy does not answer"; }

# taskpipe talks to the proxy, with dummy credentials and nothing from this user's ~/.aws.
mkdir "$WORK/home"
use_proxy() {
  export HOME=$WORK/home AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 \
    AWS_EC2_METADATA_DISABLED=true AWS_ENDPOINT_URL_SQS=http://127.0.0.1:$PROXY_PORT
  unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL AWS_DEFAULT_REGION AWS_SHARED_CREDENTIALS_FILE AWS_CONFIG_FILE \
    AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_CONTAINER_CREDENTIALS_FULL_URI http_proxy HTTP_PROXY https_proxy \
    HTTPS_PROXY 2>/dev/null || true
}

# A config whose job "tasks" has COUNT distinct tasks; the handler sleeps SLEEP seconds, then appends
# "<task> <receive count>" to RESULTS.
write_config() {  # FILE QUEUE_URL TASKS_FILE RESULTS SLEEP VISIBILITY_SECONDS
  python3 - "$@" "$WORKERS" <<'EOF' || die "cannot write config $1"
import json, os, sys
path, url, tasks, results, sleep, visibility, workers = sys.argv[1:8]
# In a config string "$$" stands for "$".
script = (f"sleep {sleep}; " if sleep != "0" else "") + \
    "printf '%s %s\\n' \"$$TASKPIPE_TASK\" \"$$TASKPIPE_RECEIVE_COUNT\" >> " + results
config = {
    "queue": {"backend": "sqs", "url": url, "protocol": "json", "wait_time": "1s",
              "visibility_timeout": f"{visibility}s"},
    "consumer": {"workers": int(workers), "batch_size": 10, "shutdown_grace": "20s",
                 "retry": {"base": "1s", "max": "5s"}},
    "jobs": [{"name": "tasks", "tasks_file": os.path.abspath(tasks),
              "handler": {"type": "exec", "timeout": "60s", "command": ["sh", "-c", script]}}],
}
with open(path, "w") as f:
    json.dump(config, f, indent=2)
EOF
  "$TASKPIPE" check --config "$1" >/dev/null || die "taskpipe check rejects the generated config $1"
}
write_tasks() { seq -f "$2-task-%05g" 1 "$3" >"$1"; }  # FILE PREFIX COUNT

# Distinct tasks and total lines in a results file (or several).
distinct() { cat "$@" 2>/dev/null | awk '{ print $1 }' | sort -u | wc -l; }
lines() { cat "$@" 2>/dev/null | wc -l; }

CRASHES=0
# Starts `taskpipe consume`; sets CONSUMER_PID.
start_consumer() {  # CONFIG LOG
  "$TASKPIPE" consume --config "$1" --log-level info >"$2" 2>&1 &
  CONSUMER_PID=$!
  PIDS+=("$CONSUMER_PID")
}
# SIGTERM, then await_exit; a consumer that died before the signal is a crash.
stop_consumer() {  # PID LOG
  kill -0 "$1" 2>/dev/null || { CRASHES=$((CRASHES + 1)); echo "fault_bench: consumer $1 died before SIGTERM:" >&2; tail -5 "$2" >&2; return; }
  kill -TERM "$1"
  await_exit "$1" "$2"
}
# Waits for a consumer we sent SIGTERM; counts a crash unless it exits 0 within 40 s.
await_exit() {  # PID LOG
  for _ in $(seq 400); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$1" 2>/dev/null; then
    CRASHES=$((CRASHES + 1))
    echo "fault_bench: consumer $1 did not stop within 40 s of SIGTERM" >&2
    tail -5 "$2" >&2
    kill -KILL "$1"
  fi
  local rc=0
  wait "$1" || rc=$?
  if (( rc != 0 )); then
    CRASHES=$((CRASHES + 1))
    echo "fault_bench: consumer $1 exited with status $rc after SIGTERM" >&2
    tail -5 "$2" >&2
  fi
}
# Waits until RESULTS files hold WANT distinct tasks; fails after LIMIT seconds or when a watched
# consumer dies.
wait_complete() {  # WANT LIMIT_SECONDS PIDS_TO_WATCH RESULTS...
  local want=$1 limit=$2 watch=$3 deadline pid
  shift 3
  deadline=$(( $(date +%s) + limit ))
  while (( $(distinct "$@") < want )); do
    for pid in $watch; do
      kill -0 "$pid" 2>/dev/null || { echo "fault_bench: consumer $pid died" >&2; return 1; }
    done
    (( $(date +%s) < deadline )) || return 1
    sleep 0.2
  done
}
# Enqueues a job's tasks with `taskpipe send`; counts a crash when it does not exit 0.
send_tasks() {  # CONFIG LOG
  local rc=0
  "$TASKPIPE" send --config "$1" --job tasks >"$2" 2>&1 || rc=$?
  if (( rc != 0 )); then
    CRASHES=$((CRASHES + 1))
    echo "fault_bench: taskpipe send exited with status $rc:" >&2
    tail -5 "$2" >&2
    return 1
  fi
}

FAILED=0
report() { echo "$1: $2"; }

# --- fault ---------------------------------------------------------------------------------------------
run_fault() {
  local crashes_before=$CRASHES started url depth completed total
  start_proxy fault "$RATE"
  use_proxy
  url=$(create_queue "fault-bench" "$VISIBILITY")
  write_tasks "$WORK/fault-tasks.txt" fault "$TASKS"
  write_config "$WORK/fault.json" "$url" "$WORK/fault-tasks.txt" "$WORK/fault-results" 0 "$VISIBILITY"
  started=$(now)
  send_tasks "$WORK/fault.json" "$WORK/fault-send.log" || true
  depth=$(queue_depth "$url")
  start_consumer "$WORK/fault.json" "$WORK/fault-consume.log"
  local consumer=$CONSUMER_PID
  wait_complete "$TASKS" "$TIMEOUT" "$consumer" "$WORK/fault-results" ||
    echo "fault_bench: fault: only $(distinct "$WORK/fault-results") of $TASKS tasks completed" >&2
  local seconds
  seconds=$(elapsed "$started")
  stop_consumer "$consumer" "$WORK/fault-consume.log"
  completed=$(distinct "$WORK/fault-results")
  total=$(lines "$WORK/fault-results")
  local stats
  stats=$(proxy_stats)
  report fault_tasks_completed "$completed"
  report fault_tasks_expected "$TASKS"
  report fault_duplicates "$((total - completed)) (handler runs beyond one per task, send duplicates included)"
  report fault_send_duplicates "$((depth > TASKS ? depth - TASKS : 0)) (queue held $depth messages after send)"
  report fault_crashes "$((CRASHES - crashes_before))"
  report fault_seconds "$seconds"
  report fault_rate "$RATE"
  report fault_proxy_requests "$(jq .requests <<<"$stats")"
  report fault_proxy_faults "$(jq .faulted <<<"$stats")"
  jq -r '.faults | to_entries[] | "fault_proxy_\(.key): \(.value.before + .value.after) (before \(.value.before), after \(.value.after))"' <<<"$stats"
  jq -r '.actions | to_entries[] | "fault_proxy_\(.key): \(.value.requests) requests, \(.value.faults) faulted"' <<<"$stats"
  grep -o 'stopped: .*' "$WORK/fault-consume.log" | tail -1 | sed 's/^/fault_consumer_/'
  (( completed == TASKS )) || { FAILED=1; echo "fault_bench: fault: $((TASKS - completed)) tasks lost" >&2; }
  (( depth >= TASKS )) || { FAILED=1; echo "fault_bench: fault: send exited, but only $depth of $TASKS messages are on the queue" >&2; }
  (( CRASHES == crashes_before )) || FAILED=1
}

# --- kill ----------------------------------------------------------------------------------------------
run_kill() {
  local crashes_before=$CRASHES started url completed total
  start_proxy kill 0
  use_proxy
  url=$(create_queue "kill-bench" "$KILL_VISIBILITY")
  write_tasks "$WORK/kill-tasks.txt" kill "$KILL_TASKS"
  write_config "$WORK/kill-a.json" "$url" "$WORK/kill-tasks.txt" "$WORK/kill-results-a" 0.1 "$KILL_VISIBILITY"
  write_config "$WORK/kill-b.json" "$url" "$WORK/kill-tasks.txt" "$WORK/kill-results-b" 0.1 "$KILL_VISIBILITY"
  send_tasks "$WORK/kill-a.json" "$WORK/kill-send.log" || true
  started=$(now)
  start_consumer "$WORK/kill-a.json" "$WORK/kill-a.log"
  local a=$CONSUMER_PID
  start_consumer "$WORK/kill-b.json" "$WORK/kill-b.log"
  local b=$CONSUMER_PID
  wait_complete "$((KILL_TASKS / 3))" "$TIMEOUT" "$a $b" "$WORK/kill-results-a" "$WORK/kill-results-b" ||
    die "kill: a third of the tasks did not complete"
  # A machine that dies: freeze A so that it starts nothing more, then kill it and the handlers it
  # was running (each in its own process group), so that nothing A held completes.
  # Wait (up to 10 s) for a moment when A runs handlers, so that it holds their messages.
  local children="" held pid
  for _ in $(seq 200); do
    kill -STOP "$a"
    children=$(pgrep -P "$a" || true)
    [[ -n $children ]] && break
    kill -CONT "$a"
    sleep 0.05
  done
  held=$(wc -w <<<"$children")
  kill -KILL "$a"
  for pid in $children; do kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; done
  wait "$a" 2>/dev/null || true
  local done_at_kill
  done_at_kill=$(distinct "$WORK/kill-results-a" "$WORK/kill-results-b")
  wait_complete "$KILL_TASKS" "$TIMEOUT" "$b" "$WORK/kill-results-a" "$WORK/kill-results-b" ||
    echo "fault_bench: kill: only $(distinct "$WORK/kill-results-a" "$WORK/kill-results-b") of $KILL_TASKS tasks completed" >&2
  local seconds
  seconds=$(elapsed "$started")
  stop_consumer "$b" "$WORK/kill-b.log"
  completed=$(distinct "$WORK/kill-results-a" "$WORK/kill-results-b")
  total=$(lines "$WORK/kill-results-a" "$WORK/kill-results-b")
  report kill_tasks_completed "$completed"
  report kill_tasks_expected "$KILL_TASKS"
  report kill_done_when_killed "$done_at_kill (A was running $held handlers)"
  report kill_duplicates "$((total - completed))"
  report kill_redelivered "$(awk '$2 > 1' "$WORK/kill-results-b" | wc -l) (tasks B ran with receive count > 1)"
  report kill_crashes "$((CRASHES - crashes_before))"
  report kill_seconds "$seconds"
  (( completed == KILL_TASKS )) || { FAILED=1; echo "fault_bench: kill: $((KILL_TASKS - completed)) tasks lost" >&2; }
  (( CRASHES == crashes_before )) || FAILED=1
}

# --- drain ---------------------------------------------------------------------------------------------
run_drain() {
  local crashes_before=$CRASHES url completed total
  start_proxy drain 0
  use_proxy
  url=$(create_queue "drain-bench" 60)
  write_tasks "$WORK/drain-tasks.txt" drain "$DRAIN_TASKS"
  write_config "$WORK/drain-a.json" "$url" "$WORK/drain-tasks.txt" "$WORK/drain-results-a" 0.1 60
  write_config "$WORK/drain-b.json" "$url" "$WORK/drain-tasks.txt" "$WORK/drain-results-b" 0.1 60
  send_tasks "$WORK/drain-a.json" "$WORK/drain-send.log" || true
  start_consumer "$WORK/drain-a.json" "$WORK/drain-a.log"
  local a=$CONSUMER_PID
  start_consumer "$WORK/drain-b.json" "$WORK/drain-b.log"
  local b=$CONSUMER_PID
  wait_complete "$((DRAIN_TASKS / 4))" "$TIMEOUT" "$a $b" "$WORK/drain-results-a" "$WORK/drain-results-b" ||
    die "drain: a quarter of the tasks did not complete"
  local signalled
  kill -0 "$a" 2>/dev/null || die "drain: consumer A died before SIGTERM"
  signalled=$(now)
  kill -TERM "$a"
  local ok=1
  wait_complete "$DRAIN_TASKS" "$DRAIN_LIMIT" "$b" "$WORK/drain-results-a" "$WORK/drain-results-b" || ok=0
  local seconds
  seconds=$(elapsed "$signalled")
  await_exit "$a" "$WORK/drain-a.log"
  local in_time late=0
  in_time=$(distinct "$WORK/drain-results-a" "$WORK/drain-results-b")
  if (( ok == 0 )); then
    # Late or lost? Messages a receive took but nobody released come back after the 60 s visibility.
    wait_complete "$DRAIN_TASKS" 75 "$b" "$WORK/drain-results-a" "$WORK/drain-results-b" || true
    late=$(( $(distinct "$WORK/drain-results-a" "$WORK/drain-results-b") - in_time ))
  fi
  stop_consumer "$b" "$WORK/drain-b.log"
  completed=$(distinct "$WORK/drain-results-a" "$WORK/drain-results-b")
  total=$(lines "$WORK/drain-results-a" "$WORK/drain-results-b")
  report drain_tasks_completed "$completed"
  report drain_tasks_within_limit "$in_time"
  report drain_tasks_late "$late (completed only after the 60 s visibility timeout: taken by a receive in flight at SIGTERM, not released)"
  report drain_tasks_expected "$DRAIN_TASKS"
  report drain_duplicates "$((total - completed))"
  report drain_crashes "$((CRASHES - crashes_before))"
  report drain_seconds_after_sigterm "$seconds (limit $DRAIN_LIMIT, queue visibility 60)"
  grep -o 'stopped: .*' "$WORK/drain-a.log" | tail -1 | sed 's/^/drain_consumer_a_/'
  (( ok == 1 && completed == DRAIN_TASKS )) ||
    { FAILED=1; echo "fault_bench: drain: $in_time of $DRAIN_TASKS tasks within $DRAIN_LIMIT s of SIGTERM ($late late, $((DRAIN_TASKS - completed)) lost)" >&2; }
  (( CRASHES == crashes_before )) || FAILED=1
}

case "$MODE" in
  fault) run_fault ;;
  kill) run_kill ;;
  drain) run_drain ;;
  all) run_fault; run_kill; run_drain ;;
esac
(( FAILED == 0 )) || die "FAILED (see above)"
echo "fault_bench: all checks passed"

#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang and runs each for a while:
#   bash scripts/fuzz.sh [seconds-per-target (default 60)] [target ...]   (default: every target)
# Targets: schedule config sqs_json sqs_xml envelope webhook (fuzz/fuzz_targets.h).
#
# Everything lands in build-fuzz/ (git-ignored):
#   corpus/<target>/     the working corpus: the seeds of fuzz/corpus/<target>/ and the saved inputs
#                        of fuzz/regressions/<target>/, plus what libFuzzer finds; kept between runs
#   artifacts/<target>/  inputs that crashed (crash-*), leaked (leak-*), hung (timeout-*) or ran out
#                        of memory (oom-*); replay one with build-fuzz/fuzz_<target> FILE
#   logs/<target>.log    libFuzzer's output
# Prints a table at the end; exits non-zero if any target crashed (any new artifact).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

all_targets=(schedule config sqs_json sqs_xml envelope webhook)
seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
  echo "usage: bash scripts/fuzz.sh [seconds-per-target] [target ...]  (targets: ${all_targets[*]})" >&2
  exit 2
fi
shift $(( $# > 0 ? 1 : 0 ))
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  if [[ " ${all_targets[*]} " != *" $t "* ]]; then
    echo "fuzz: unknown target '$t' (targets: ${all_targets[*]})" >&2
    exit 2
  fi
done

# Longest input libFuzzer generates, per target: schedule expressions are short; configs and SQS
# replies need room for a few messages or jobs.
max_len_for() {
  case "$1" in
    schedule) echo 256 ;;
    config) echo 8192 ;;
    sqs_json | sqs_xml) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

# The project's own packages, and clang with libFuzzer.
bash scripts/setup.sh clang libclang-rt-14-dev

build="build-fuzz"
CC=clang CXX=clang++ cmake -S fuzz -B "$build" -G Ninja >/dev/null
cmake --build "$build"

mkdir -p "$build/logs"
count_artifacts() {  # crash-, leak-, timeout- and oom- files in $1
  find "$1" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) |
    wc -l
}

rows=()
failed=0
for t in "${targets[@]}"; do
  corpus="$build/corpus/$t"
  artifacts="$build/artifacts/$t"
  log="$build/logs/$t.log"
  mkdir -p "$corpus" "$artifacts"
  for seeds in "fuzz/corpus/$t" "fuzz/regressions/$t"; do
    [ -d "$seeds" ] || continue
    while IFS= read -r -d '' f; do
      [ -e "$corpus/$(basename "$f")" ] || cp "$f" "$corpus/"
    done < <(find "$seeds" -type f -print0)
  done
  before=$(count_artifacts "$artifacts")
  echo "fuzz: $t for ${seconds}s (log: $log)" >&2
  status=0
  "$build/fuzz_$t" "$corpus" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -max_len="$(max_len_for "$t")" -artifact_prefix="$artifacts/" -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  crashes=$(( $(count_artifacts "$artifacts") - before ))
  if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
    crashes=1  # died without leaving an artifact (e.g. killed): still a failure
  fi
  # libFuzzer's final stats, and the corpus size of its last status line ("corp: 123/45Kb").
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  corp=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | sed 's/corp: //')
  rows+=("$t ${execs:-?} ${rate:-?} ${corp:-?} $crashes")
  if [ "$crashes" -gt 0 ]; then
    failed=1
    echo "fuzz: $t FAILED; see $log and $artifacts/" >&2
    grep -m1 -E 'ERROR: (AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer|libFuzzer)|runtime error:|invariant violated' \
      "$log" >&2 || true
  fi
done

echo
printf '%-10s %12s %9s %8s %8s\n' target execs execs/s corpus crashes
for row in "${rows[@]}"; do
  # shellcheck disable=SC2086  # the row's fields, split on purpose
  printf '%-10s %12s %9s %8s %8s\n' $row
done
exit "$failed"

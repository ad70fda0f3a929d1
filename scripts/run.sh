#!/usr/bin/env bash
# Builds taskpipe and runs it in local mode on the example config (no AWS needed).
# Installs what it needs first (scripts/setup.sh). Extra arguments go to taskpipe.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target taskpipe

# The example's one-off at() job fires five seconds from now (at() takes a local time without a
# zone; the job's zone is UTC).
export TASKPIPE_DEMO_AT="${TASKPIPE_DEMO_AT:-$(date -u -d '+5 seconds' +%Y-%m-%dT%H:%M:%S)}"
echo "taskpipe: local mode on examples/local.json; Ctrl-C stops it (running tasks finish first)" >&2
exec ./build/taskpipe run --config examples/local.json "$@"

#!/usr/bin/env bash
# Builds taskpipe and runs it in local mode on the example config (no AWS needed).
# Installs what it needs first (scripts/setup.sh). Extra arguments go to taskpipe.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target taskpipe

# The consumer pool and `taskpipe run` are not built yet: until then this validates the example
# config and shows when each of its jobs would fire.
./build/taskpipe check --config examples/local.json "$@"

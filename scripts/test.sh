#!/usr/bin/env bash
# The test command: builds and runs every test suite in the `ci` preset (release, warnings as
# errors) and again in the `asan` preset (address + undefined-behaviour sanitizers), then the
# static checks once (scripts/lint.sh: clang-tidy, ruff, mypy).
#   scripts/test.sh            both presets
#   scripts/test.sh ci         one preset
# Redis and Kafka suites start their own brokers; see docs/testing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
presets=("$@")
[ ${#presets[@]} -gt 0 ] || presets=(ci asan)
jobs=${PRPC_JOBS:-$(nproc)}
for preset in "${presets[@]}"; do
  printf '\n==> %s: configure and build\n' "$preset"
  cmake --preset "$preset" > /dev/null
  cmake --build --preset "$preset" -j "$jobs"
  printf '\n==> %s: tests\n' "$preset"
  ctest --preset "$preset" -j "$jobs" --timeout 900
done
printf '\n==> static checks\n'
scripts/lint.sh

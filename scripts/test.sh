#!/usr/bin/env bash
# The test command: builds and runs every test suite in the `ci` preset (release, warnings as
# errors) and again in the `asan` preset (address + undefined-behaviour sanitizers), runs the
# fuzzers for a bounded time (the `fuzz` preset: clang, libFuzzer, its own sanitizers; 30 s per
# target here, PRPC_FUZZ_SECONDS), then the static checks once (scripts/lint.sh --format:
# clang-tidy, clang-format, ruff, mypy).
#   scripts/test.sh            ci, asan and fuzz
#   scripts/test.sh ci         one preset (or several: ci fuzz)
# Redis and Kafka suites start their own brokers; see docs/testing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
presets=("$@")
[ ${#presets[@]} -gt 0 ] || presets=(ci asan fuzz)
jobs=${PRPC_JOBS:-$(nproc)}
for preset in "${presets[@]}"; do
  if [ "$preset" = fuzz ]; then
    printf '\n==> fuzz: the fuzzers, %s s each\n' "${PRPC_FUZZ_SECONDS:-30}"
    PRPC_FUZZ_SECONDS=${PRPC_FUZZ_SECONDS:-30} scripts/fuzz.sh
    continue
  fi
  printf '\n==> %s: configure and build\n' "$preset"
  cmake --preset "$preset" > /dev/null
  cmake --build --preset "$preset" -j "$jobs"
  printf '\n==> %s: tests\n' "$preset"
  ctest --preset "$preset" -j "$jobs" --timeout 900
done
printf '\n==> static checks\n'
scripts/lint.sh --format

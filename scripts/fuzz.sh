#!/usr/bin/env bash
# The fuzzers (tests/fuzz): builds the fuzz preset (clang, libFuzzer, address + undefined
# sanitizers), replays every saved crash in tests/fuzz/regressions/<target>, then fuzzes each
# target for a bounded time from its corpus in tests/fuzz/corpus/<target>. Fails on any crash,
# leak, timeout or out-of-memory; the input that caused it is written to build/fuzz/crashes/.
#   scripts/fuzz.sh                 every target, 60 s each (PRPC_FUZZ_SECONDS), two at a time
#   scripts/fuzz.sh -t 600 fuzz_codecs fuzz_config
#   scripts/fuzz.sh --update-corpus keep the new inputs that add coverage in tests/fuzz/corpus
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${PRPC_FUZZ_SECONDS:-60}
update=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    -t) seconds=$2; shift 2 ;;
    --update-corpus) update=1; shift ;;
    -h | --help) sed -n '2,9p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_codecs fuzz_config fuzz_worker_protocol fuzz_redis_url
                                     fuzz_redis_replies fuzz_kafka_wire)

printf '==> fuzz: configure and build\n'
cmake --preset fuzz > /dev/null
cmake --build --preset fuzz -j "${PRPC_JOBS:-$(nproc)}"
bin=build/fuzz/tests/fuzz
work=build/fuzz/work
crashes=build/fuzz/crashes
mkdir -p "$crashes"
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1

run_one() {
  local t=$1 corpus=$work/$1
  rm -rf "$corpus" && mkdir -p "$corpus"
  cp -r tests/fuzz/corpus/"$t"/. "$corpus"/ 2>/dev/null || true
  if [ -d tests/fuzz/regressions/"$t" ]; then
    "$bin/$t" -runs=0 tests/fuzz/regressions/"$t"/* > "$work/$t.replay.log" 2>&1 ||
      { echo "fuzz: $t fails a saved regression input"; cat "$work/$t.replay.log"; return 1; }
  fi
  if "$bin/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$crashes/$t-" "$corpus" > "$work/$t.log" 2>&1; then
    printf '    %-22s %s\n' "$t" "$(grep -E '^stat::number_of_executed_units' "$work/$t.log" |
      awk '{print $2 " runs"}'), corpus $(ls "$corpus" | wc -l) inputs, no crash"
    if [ "$update" -eq 1 ]; then
      "$bin/$t" -merge=1 tests/fuzz/corpus/"$t" "$corpus" > /dev/null 2>&1
    fi
  else
    echo "fuzz: $t crashed; input in $crashes (copy it to tests/fuzz/regressions/$t/):"
    tail -60 "$work/$t.log"
    return 1
  fi
}

mkdir -p "$work"
printf '==> fuzz: %d targets, %s s each\n' "${#targets[@]}" "$seconds"
failed=0
pids=()
for t in "${targets[@]}"; do
  run_one "$t" & pids+=($!)
  if [ ${#pids[@]} -ge 2 ]; then
    wait "${pids[0]}" || failed=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done
[ "$failed" -eq 0 ] || { echo "fuzz: failures (see above)" >&2; exit 1; }
printf 'fuzz: no crash\n'

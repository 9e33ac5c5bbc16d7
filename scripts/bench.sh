#!/usr/bin/env bash
# The benchmark comparison (`make bench`): builds PRPC, installs the peers pinned in
# bench/requirements.txt into a virtualenv of its own (build/bench-venv), starts a private
# redis-server and measures every system. Writes bench/results/results.{md,png,json}.
#   scripts/bench.sh                      the full run (about 15 minutes on 2 cores)
#   scripts/bench.sh --quick              a smoke run (a couple of minutes)
#   scripts/bench.sh --systems 'prpc-*,celery-*' --workloads noop,echo
#   scripts/bench.sh --list               the systems and their workloads
# PRPC_BENCH_PRESET picks the CMake preset: default dev (-O2 with symbols, so profiles have
# names; the tree developers already build). PRPC_JOBS is the build's parallelism (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
preset=${PRPC_BENCH_PRESET:-dev}
jobs=${PRPC_JOBS:-2}
venv=$root/build/bench-venv

for tool in cmake redis-server python3; do
  command -v "$tool" > /dev/null || { echo "bench: $tool is missing (run scripts/deps.sh test)" >&2; exit 1; }
done
# The NATS anchor's server (Debian installs it in /usr/sbin). Without it the NATS rows are n/a.
if ! command -v nats-server > /dev/null && [ ! -x /usr/sbin/nats-server ]; then
  scripts/deps.sh test || echo "bench: installing nats-server failed: the NATS rows will be n/a" >&2
fi

echo "==> building PRPC (preset $preset)"
cmake --preset "$preset" > /dev/null
targets=(prpc-host prpc_codec_rawjson prpc_executor_thread prpc_functions_example
         prpc_python_core)
# Built when the tree has them (a system whose parts are missing is reported n/a).
optional=(prpc_broker_redis prpc_broker_kafka prpc_codec_jsonpickle prpc_executor_async
          prpc_executor_process prpc-worker floor_hiredis redis_call_bench)
known=$(cmake --build --preset "$preset" --target help 2> /dev/null | sed -n 's/: .*//p')
for t in "${optional[@]}"; do
  grep -qx "$t" <<< "$known" && targets+=("$t")
done
cmake --build --preset "$preset" -j "$jobs" --target "${targets[@]}"

stamp=$venv/.requirements.sha256
want=$(sha256sum bench/requirements.txt | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2> /dev/null)" != "$want" ]; then
  echo "==> installing the peers into $venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -r bench/requirements.txt
  echo "$want" > "$stamp"
fi

# The Kafka broker's jars (once; later runs find them in the local Maven repository). Without
# them the Kafka rows are n/a.
if command -v java > /dev/null && command -v mvn > /dev/null; then
  scripts/deps.sh kafka || echo "bench: fetching the Kafka jars failed: the Kafka rows will be n/a"
fi

echo "==> measuring"
exec "$venv/bin/python" -m bench.compare --build-dir "$root/build/$preset" "$@"

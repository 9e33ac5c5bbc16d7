#!/usr/bin/env bash
# The demo: prpc-host serves the example functions over Redis, and a few calls through the prpc
# command (and redis-cli, for the raw protocol) show the answers. Uses the broker in
# PRPC_URL_BROKER when set; otherwise starts a private redis-server on a free port and stops it
# at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin=$root/build/ci/bin

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@" || true; }

say "Building PRPC (preset ci; the first build takes a few minutes)"
cmake --preset ci > /dev/null
cmake --build --preset ci --target prpc-host prpc-cli prpc_broker_redis prpc_codec_rawjson \
  prpc_executor_thread prpc_functions_example > /dev/null
if cmake --build --preset ci --target prpc_codec_jsonpickle > /dev/null 2>&1; then
  python_codec=jsonpickle
else
  python_codec=none
fi

work=$(mktemp -d /tmp/prpc-demo.XXXXXX)
redis_pid=
host_pid=
cleanup() {
  [ -n "$host_pid" ] && kill -TERM "$host_pid" 2> /dev/null && wait "$host_pid" 2> /dev/null
  [ -n "$redis_pid" ] && kill "$redis_pid" 2> /dev/null && wait "$redis_pid" 2> /dev/null
  rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${PRPC_URL_BROKER:-}" ]; then
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  say "Starting a private redis-server on port $port"
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no > "$work/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 100); do
    redis-cli -p "$port" ping > /dev/null 2>&1 && break
    sleep 0.05
  done
  export PRPC_TYPE_BROKER=redis PRPC_URL_BROKER="redis://127.0.0.1:$port/0"
fi
export PRPC_TYPE_BROKER=${PRPC_TYPE_BROKER:-redis}
export PRPC_QUEUE_NAME=${PRPC_QUEUE_NAME:-demo}

say "Serving the example functions: prpc-host on queue '$PRPC_QUEUE_NAME' at $PRPC_URL_BROKER"
"$bin/prpc-host" --set functions.plugins=example --set codec.python=$python_codec \
  --set executors.thread.workers=4 > "$work/host.log" 2>&1 &
host_pid=$!
for _ in $(seq 200); do
  "$bin/prpc" call ping --timeout 1 > /dev/null 2>&1 && break
  kill -0 "$host_pid" 2> /dev/null || { cat "$work/host.log"; exit 1; }
done

say "Calls through the prpc command"
run "$bin/prpc" call hello_world
run "$bin/prpc" call summ '[1, 2]'
run "$bin/prpc" call summ '[1, 2]' --kwargs '{"z": 10}'
run "$bin/prpc" call echo '[{"nested": [1, 2.5, "three"], "ok": true}]'
run "$bin/prpc" call fail '["something went wrong"]'
run "$bin/prpc" call summ '[1]'
run "$bin/prpc" funcs

if [ "$PRPC_TYPE_BROKER" = redis ] && command -v redis-cli > /dev/null; then
  say "The raw protocol with nothing but redis-cli (any language can do this)"
  url=${PRPC_URL_BROKER#redis://}
  hostport=${url%%/*}
  cli=(redis-cli -h "${hostport%:*}" -p "${hostport##*:}")
  id=$(cat /proc/sys/kernel/random/uuid)
  msg="{\"func_name\": \"hello_world\", \"func_args\": [], \"func_kwargs\": {}, \"message_id\": \"$id\"}"
  run "${cli[@]}" XADD "prpc_raw_$PRPC_QUEUE_NAME" '*' message "$msg"
  for _ in $(seq 100); do
    [ -n "$("${cli[@]}" GET "prpc_feedback_raw_${PRPC_QUEUE_NAME}_$id")" ] && break
    sleep 0.02
  done
  run "${cli[@]}" GET "prpc_feedback_raw_${PRPC_QUEUE_NAME}_$id"
fi

run "$bin/prpc" stats
say "Stopping prpc-host (SIGTERM drains calls in flight)"
kill -TERM "$host_pid"
wait "$host_pid" && host_pid=
tail -n 2 "$work/host.log"

# PRPC's main job: a Python function called from another Python process.
if cmake --build --preset ci --target prpc_python_core prpc_codec_jsonpickle prpc_executor_process \
    prpc_executor_async prpc-worker > "$work/python-build.log" 2>&1; then
  export PYTHONPATH="$root/build/ci/python${PYTHONPATH:+:$PYTHONPATH}"
  say "A Python server (examples/python/server.py: thread, process and async workers)"
  python3 "$root/examples/python/server.py" > "$work/app.log" 2>&1 &
  app_pid=$!
  host_pid=$app_pid  # cleanup() stops it
  say "Stubs for a client: python -m prpc.create_server_func"
  # The request waits in the queue until the server is up, so one attempt is normally enough.
  for _ in 1 2 3; do
    (cd "$work" && python3 -m prpc.create_server_func > "$work/stubs.log" 2>&1) && \
      grep -q "def greet" "$work/server_func.py" 2> /dev/null && break
    kill -0 "$app_pid" 2> /dev/null || { cat "$work/app.log"; exit 1; }
  done
  sed -n '/^def /,/^$/p' "$work/server_func.py" | grep '^def ' || true
  say "A Python client (examples/python/client.py) calls it"
  cp "$root/examples/python/client.py" "$work/"  # beside the stubs it imports
  (cd "$work" && python3 client.py)
  say "Stopping the Python server (SIGTERM drains calls in flight)"
  kill -TERM "$app_pid"
  wait "$app_pid" && host_pid=
else
  say "Skipping the Python part: the Python SDK did not build (see $work/python-build.log)"
  cat "$work/python-build.log" | tail -n 5
fi

#!/usr/bin/env bash
# Installs this build of PRPC into a temporary prefix, builds the out-of-tree example plugin with
# find_package(prpc) against it, and serves a call through the example broker with the installed
# prpc-host and prpc: the SDK works for third parties, not just inside this tree.
set -euo pipefail
build_dir=$1
source_dir=$2
work=$(mktemp -d /tmp/prpc-sdk-example.XXXXXX)
host_pid=
cleanup() {
  [ -n "$host_pid" ] && kill "$host_pid" 2>/dev/null && wait "$host_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

cmake --install "$build_dir" --prefix "$work/prefix" > "$work/install.log"
cmake -S "$source_dir/sdk/examples/spool_broker" -B "$work/build" -G Ninja \
  -DCMAKE_PREFIX_PATH="$work/prefix" > "$work/configure.log"
cmake --build "$work/build" > "$work/build.log"

symbols=$(nm -D --defined-only --format=posix "$work/build/prpc_broker_spool.so" | cut -d' ' -f1)
[ "$symbols" = "prpc_plugin_entry" ] || { echo "unexpected exports: $symbols"; exit 1; }

export PRPC_PLUGIN_PATH="$work/build" PRPC_TYPE_BROKER=spool PRPC_URL_BROKER="spool://$work/spool"
export PRPC_QUEUE_NAME=sdk_example
"$work/prefix/bin/prpc-host" --list-plugins | grep -q "broker 'spool'"
"$work/prefix/bin/prpc-host" --set functions.plugins=example --set codec.python=none \
  > "$work/host.log" 2>&1 &
host_pid=$!

answer=$("$work/prefix/bin/prpc" call summ '[20, 22]' --kwargs '{"z": 0}' --timeout 20)
[ "$answer" = "42" ] || { echo "summ answered '$answer'"; cat "$work/host.log"; exit 1; }
if "$work/prefix/bin/prpc" call fail '["on purpose"]' 2> "$work/fail.txt"; then
  echo "fail() did not fail"; exit 1
fi
grep -q "ValueError: on purpose" "$work/fail.txt"

kill -TERM "$host_pid"
wait "$host_pid" && host_pid=
echo "the out-of-tree spool broker served calls through the installed prpc-host"

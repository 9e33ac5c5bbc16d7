#!/usr/bin/env bash
# The soak test: steady traffic against three servers on a private redis-server, one server
# SIGKILLed and restarted every minute, reporting calls/s, p50/p99, errors and every process's
# RSS per minute. Not part of `make test`.
#   scripts/soak.sh [minutes] [--rate N] [--callers N] [--servers N] [--kill-every S]
# Uses the ci preset's build (build/ci/python) and the project's .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
[ -d "$root/build/ci/python/prpc" ] || { echo "soak: build the ci preset first (make test or cmake --build --preset ci)" >&2; exit 1; }
python=$root/.venv/bin/python3
[ -x "$python" ] || python=python3
export PYTHONPATH="$root/build/ci/python${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" "$root/scripts/soak.py" "$@"

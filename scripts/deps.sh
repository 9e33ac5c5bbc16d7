#!/usr/bin/env bash
# Installs what PRPC needs when it is missing, and says what it installs and why. The one list of
# dependencies: the Makefile's targets and .ci/run call this, nothing else installs anything.
#   scripts/deps.sh [PROFILE...]     install what the profiles need (default: test)
#   scripts/deps.sh --check [PROFILE...]   only report what is missing; exit 1 if anything is
#   scripts/deps.sh --missing [PROFILE...] print the missing Debian packages on one line (CMake's
#                                          error message on a machine that lacks them)
# Profiles: build (compile PRPC), demo (build + a redis-server), test (build + the brokers and
# Java for the Kafka suites + the Kafka jars), wheel (build; the packaging tools are Python
# packages), kafka (the Kafka jars alone), fresh (what scripts/fresh-machine-check.sh needs).
# Debian packages come from apt-get (as root, or through sudo); Python packages from pip into the
# project's environment .venv (Debian's python3 takes no pip installs, PEP 668), made from the
# python3 on PATH; PRPC_VENV names another place. When everything is present this takes a few
# tens of milliseconds and prints nothing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv=${PRPC_VENV:-$root/.venv}

# Debian packages: profile, package, why. To add one, add a line (the build profile is part of
# demo, test and wheel).
apt_table=$(cat <<'EOF'
build build-essential       the C and C++ compilers
build cmake                 the build
build ninja-build           the build (the presets' generator)
build pkg-config            finding hiredis and librdkafka
build ccache                faster rebuilds (the presets use it)
build git                   the build's version control
build libboost1.81-dev      Asio and DLL (headers only)
build libhiredis-dev        the Redis broker plugin
build librdkafka-dev        the Kafka broker plugin
build rapidjson-dev         JSON in the core and the codecs
build libtomlplusplus-dev   the configuration files
build libssl-dev            libcrypto: HMAC-SHA256 of signed messages
build libgtest-dev          the C++ tests (configured in every preset)
build libgmock-dev          the C++ tests (configured in every preset)
build python3-dev           the Python extension and prpc-host's embedded interpreter
build python3-venv          the project's Python environment (.venv)
demo  redis-server          the demo's private broker (and redis-cli)
test  redis-server          the Redis suites start their own redis-server
test  nats-server           the benchmark comparison's NATS request/reply anchor
test  kcat                  the Kafka suites' command-line checks
test  libbenchmark-dev      the process executor's micro-benchmark (built when present)
test  default-jre-headless  the Kafka suites run Apache Kafka
test  maven                 fetching the Apache Kafka jars
test  openssl               the SASL_SSL Kafka fixture's keys and certificates
test  clang-tidy            scripts/lint.sh's static checks of the C++ sources
test  clang-format          scripts/lint.sh --format
test  clang-14              the fuzz preset's compiler (libFuzzer targets, scripts/fuzz.sh)
test  libclang-rt-14-dev    libFuzzer and the sanitizers' runtimes for the fuzz preset
test  llvm-14               llvm-symbolizer: readable stacks in the fuzzers' crash reports
test  prometheus            the observability suite scrapes a server with a real Prometheus
test  chromium              the dashboard's browser tests (headless)
test  chromium-driver       chromedriver, which drives it for selenium
kafka default-jre-headless  Apache Kafka runs on Java
kafka maven                 fetching the Apache Kafka jars
fresh debootstrap           building the bare Debian root
fresh redis-server          the broker outside the bare root
EOF
)
# Python packages: requirements-dev.txt (the build's pybind11 and scikit-build-core, the test
# tools, the packaging tools), installed together into .venv for every profile but kafka/fresh.

check_only=false
missing_only=false
profiles=()
for arg in "$@"; do
  case $arg in
    --check) check_only=true ;;
    --missing) missing_only=true ;;
    build | demo | test | wheel | kafka | fresh) profiles+=("$arg") ;;
    -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "deps: unknown profile '$arg' (build, demo, test, wheel, kafka, fresh)" >&2; exit 2 ;;
  esac
done
[ ${#profiles[@]} -gt 0 ] || profiles=(test)

wanted=" build "  # every profile but kafka and fresh builds PRPC
want_python=false
want_kafka=false
for p in "${profiles[@]}"; do
  case $p in
    kafka) want_kafka=true ;;
    fresh) ;;
    test) want_python=true; want_kafka=true ;;
    *) want_python=true ;;
  esac
done
[ "$want_python" = true ] || wanted=" "
for p in "${profiles[@]}"; do wanted+="$p "; done

say() { printf 'deps: %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo > /dev/null; then
    sudo "$@"
  else
    say "installing Debian packages needs root: run this as root or install sudo" >&2
    exit 1
  fi
}

# --- Debian packages -------------------------------------------------------------------------
declare -A why=()
order=()
while read -r profile package reason; do
  [[ "$wanted" == *" $profile "* ]] || continue
  if [ -z "${why[$package]+x}" ]; then order+=("$package"); why[$package]=$reason; fi
done <<< "$apt_table"

missing=()
if [ ${#order[@]} -gt 0 ]; then
  # One dpkg-query for all of them: 'ii' is installed; unknown packages are missing too.
  installed=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "${order[@]}" 2> /dev/null |
                 awk '$1 == "ii" {print $2}' | sed 's/:.*//' || true)
  for p in "${order[@]}"; do
    grep -qx "$p" <<< "$installed" || missing+=("$p")
  done
fi
if [ "$missing_only" = true ]; then
  echo "${missing[*]}"
  exit 0
fi
if [ ${#missing[@]} -gt 0 ]; then
  say "missing Debian packages:"
  for p in "${missing[@]}"; do printf '  + %-22s %s\n' "$p" "${why[$p]}"; done
  if [ "$check_only" = true ]; then exit 1; fi
  say "installing them with apt-get"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}"
fi

# --- Python packages, in the project's environment ------------------------------------------
if [ "$want_python" = true ]; then
  requirements=$root/requirements-dev.txt
  stamp=$venv/.prpc-requirements.sha256
  want=$(sha256sum "$requirements" | cut -d' ' -f1)
  if [ ! -x "$venv/bin/python3" ] || [ "$(cat "$stamp" 2> /dev/null)" != "$want" ]; then
    if [ "$check_only" = true ]; then
      say "the Python environment $venv is missing or older than requirements-dev.txt"
      exit 1
    fi
    if [ ! -x "$venv/bin/python3" ]; then
      say "creating the project's Python environment $venv (with $(command -v python3))"
      python3 -m venv "$venv"
    fi
    say "installing Python packages into $venv: the build's pybind11 and scikit-build-core," \
        "the test tools and the wheel tools (requirements-dev.txt):"
    grep -v '^\s*#' "$requirements" | grep -v '^\s*$' | sed 's/^/  + /'
    "$venv/bin/python3" -m pip install -q --disable-pip-version-check -r "$requirements"
    echo "$want" > "$stamp"
  fi
fi

# --- the Apache Kafka jars the Kafka suites run ----------------------------------------------
if [ "$want_kafka" = true ]; then
  classpath=$root/tests/support/kafka/kafka-classpath.sh
  # Offline, from its cache: fast when the jars are there.
  if ! "$classpath" > /dev/null 2>&1; then
    if [ "$check_only" = true ]; then say "the Apache Kafka jars are missing"; exit 1; fi
    say "fetching the Apache Kafka 3.9.1 broker jars into the local Maven repository" \
        "(the Kafka suites run a real broker)"
    jars=$("$classpath" --fetch)
    say "Kafka 3.9.1 broker ready ($(tr ':' '\n' <<< "$jars" | wc -l) jars)"
  fi
fi

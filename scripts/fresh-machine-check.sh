#!/usr/bin/env bash
# The proof on a machine that has nothing: builds a minimal Debian bookworm root with
# debootstrap (from the Debian mirror this machine's apt uses) and, inside it through chroot,
#   (a) installs only python3 and python3-venv, puts the wheel into a venv, checks with ldd that
#       every library it loads resolves inside the package or to glibc/libstdc++, serves the
#       seed's example with `prpc serve app:app` and calls it (the prpc command and the
#       original PRPC's Python client) through a redis-server running outside the root, on
#       loopback;
#   and, given dist/prpc-*.tar.gz (make sdist), shows that `pip install` of it fails there with
#   one line naming what to install;
#   (b) installs git and make, clones this repository (its committed HEAD) and runs `make demo`,
#       which installs everything else itself.
#   sudo scripts/fresh-machine-check.sh [WHEEL]   (default: the newest dist/prpc-*.whl)
#   PRPC_FRESH_DIR   where the root is built (default /tmp/prpc-fresh; its debootstrap cache is
#                    kept there between runs); PRPC_FRESH_KEEP=1 keeps the root afterwards.
# Takes 6-12 minutes on two cores (most of it the demo's first build); not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
[ "$(id -u)" -eq 0 ] || { echo "fresh-machine-check: run as root (debootstrap, chroot)" >&2; exit 1; }
wheel=${1:-$(ls -t dist/prpc-*.whl 2> /dev/null | head -n 1)}
[ -f "$wheel" ] || { echo "fresh-machine-check: no wheel: run make wheel first" >&2; exit 1; }
wheel=$(realpath "$wheel")

work=${PRPC_FRESH_DIR:-/tmp/prpc-fresh}
target=$work/root
start=$(date +%s)
say() { printf '\n\033[1m[%4ss] %s\033[0m\n' "$(($(date +%s) - start))" "$*"; }

scripts/deps.sh fresh  # debootstrap, and the redis-server that runs outside the root

# The mirror this machine's apt uses (deb822 or one-line sources).
mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)$/\1/p' \
           /etc/apt/sources.list.d/*.sources 2> /dev/null | head -n 1)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' \
                               /etc/apt/sources.list 2> /dev/null)
[ -n "$mirror" ] || { echo "fresh-machine-check: no Debian mirror in /etc/apt" >&2; exit 1; }

redis_pid=
cleanup() {
  set +e
  # Whatever still runs inside the root (servers this script started there) is stopped by pid.
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2> /dev/null)" = "$target" ] && kill -9 "${p#/proc/}" 2> /dev/null
  done
  [ -n "$redis_pid" ] && kill "$redis_pid" 2> /dev/null && wait "$redis_pid" 2> /dev/null
  for m in dev/pts dev proc sys; do
    mountpoint -q "$target/$m" && umount -l "$target/$m"
  done
  if [ "${PRPC_FRESH_KEEP:-}" != 1 ]; then rm -rf "$target"; fi
}
trap cleanup EXIT

say "debootstrap: a minimal Debian bookworm root in $target (from $mirror)"
cleanup
trap cleanup EXIT
mkdir -p "$work/cache" "$target"
debootstrap --variant=minbase --cache-dir="$work/cache" bookworm "$target" "$mirror" \
  > "$work/debootstrap.log" 2>&1 || { tail -n 20 "$work/debootstrap.log"; exit 1; }
du -sh "$target" | cut -f1 | sed 's/^/root size: /'
cp /etc/resolv.conf "$target/etc/resolv.conf"
# This workplace reaches the package registries through a TLS proxy whose CA its machines trust
# (in /usr/local/share/ca-certificates, and pip's configuration names the bundle): a bare machine
# here has that too. The CA bundle is the host's until the root installs ca-certificates, which
# rebuilds it from the same sources.
if [ -d /usr/local/share/ca-certificates ]; then
  mkdir -p "$target/usr/local/share/ca-certificates" "$target/etc/ssl/certs"
  cp -r /usr/local/share/ca-certificates/. "$target/usr/local/share/ca-certificates/"
  cp /etc/ssl/certs/ca-certificates.crt "$target/etc/ssl/certs/"
fi
[ -f /etc/pip.conf ] && cp /etc/pip.conf "$target/etc/pip.conf"
# Packages' maintainer scripts start no services inside the root (redis-server's would).
printf '#!/bin/sh\nexit 101\n' > "$target/usr/sbin/policy-rc.d"
chmod +x "$target/usr/sbin/policy-rc.d"
# The host's Debian sources (with the security suite) replace debootstrap's one line.
for f in /etc/apt/sources.list.d/*.sources; do
  grep -q '/debian' "$f" && cp "$f" "$target/etc/apt/sources.list.d/" && rm -f "$target/etc/apt/sources.list"
done
mount -t proc proc "$target/proc"
mount -t sysfs sys "$target/sys"
mount --bind /dev "$target/dev"
mount --bind /dev/pts "$target/dev/pts"

# Runs a command inside the root with a clean environment.
inside() {
  chroot "$target" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}
inside_sh() { inside /bin/bash -euo pipefail -c "$1"; }

say "(a) the wheel on a machine with only python3 and python3-venv"
inside_sh 'apt-get update -q > /dev/null && DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -q --no-install-recommends python3 python3-venv > /dev/null'
inside_sh 'dpkg-query -W -f="\${Package}\n" | grep -E "^(libhiredis|librdkafka|libssl|libsasl2|libzstd|liblz4)" | sed "s/^/  system has: /" || true'
mkdir -p "$target/opt/app"
cp "$wheel" "$target/opt/"
inside python3 -m venv /opt/venv
inside /opt/venv/bin/pip install -q --no-index "/opt/$(basename "$wheel")"
echo "installed $(basename "$wheel") ($(du -h "$wheel" | cut -f1))"

say "ldd: every library of every .so and program in the installed package"
inside_sh '
site=$(/opt/venv/bin/python3 -c "import prpc, os; print(os.path.dirname(os.path.dirname(prpc.__file__)))")
files=$(find "$site/prpc" "$site/prpc.libs" -type f \( -name "*.so*" -o -perm -u+x \) ! -name "*.py")
bad=0
for f in $files; do
  file_ok=1
  while read -r lib arrow path rest; do
    [ "$arrow" = "=>" ] || continue
    case $lib in
      *hiredis*|*rdkafka*|libssl*|libcrypto*|libsasl*|libzstd*|liblz4*)
        case $path in "$site"/*) ;; *) echo "  $f: $lib -> $path (outside the package)"; bad=1; file_ok=0 ;; esac ;;
    esac
    [ "$path" = "not" ] && { echo "  $f: $lib not found"; bad=1; file_ok=0; }
  done < <(ldd "$f" 2>&1)
done
echo "checked $(wc -w <<< "$files") files"
ldd "$site"/prpc/plugins/prpc_broker_kafka.so | grep -E "rdkafka|ssl|crypto|sasl|zstd|lz4" | sed "s/^/ /"
ldd "$site"/prpc/plugins/prpc_broker_redis.so | grep -E "hiredis" | sed "s/^/ /"
exit $bad'

say "the commands on the venv's PATH"
inside_sh '/opt/venv/bin/prpc --help | head -n 8; /opt/venv/bin/prpc-host --version
/opt/venv/bin/prpc-host --list-plugins | head -n 14'

# The broker runs outside the root, on this machine's loopback, on a free port.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no > "$work/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 100); do redis-cli -p "$port" ping > /dev/null 2>&1 && break; sleep 0.05; done
url="redis://127.0.0.1:$port/0"

# The seed's server, as its README writes it, and the original PRPC's client.
cat > "$target/opt/app/app.py" <<'PY'
from prpc.app_server import AppServer
import time
import datetime

app = AppServer("redis", "redis://localhost:6379/0", "thread", 4, datetime.timedelta(seconds=100))


@app.decorator_reg_func("process")
def summ(a: int | float, b, z=0.5):
    return a + b + z


@app.decorator_reg_func()
def hello_world():
    time.sleep(0.5)
    return "hello_world"


if __name__ == "__main__":
    app.start()
PY
cat > "$target/opt/app/client.py" <<'PY'
import datetime
from prpc.server_func import summ, hello_world

print("hello_world() ->", hello_world().sync_wait_result_task(datetime.timedelta(seconds=20)))
print("summ(1, 2) ->", summ(1, 2).sync_wait_result_task(datetime.timedelta(seconds=20)))
PY

say "prpc serve app:app (the seed's server) against redis-server on 127.0.0.1:$port outside the root"
env_app="PRPC_TYPE_BROKER=redis PRPC_URL_BROKER=$url PRPC_QUEUE_NAME=task_prpc"
inside_sh "cd /opt/app && export $env_app && /opt/venv/bin/prpc serve app:app --check"
inside_sh "cd /opt/app && export $env_app && exec /opt/venv/bin/prpc serve app:app" \
  > "$work/serve.log" 2>&1 &
serve_pid=$!
inside_sh "export $env_app
for i in \$(seq 300); do /opt/venv/bin/prpc call hello_world --timeout 1 > /dev/null 2>&1 && break; done
echo '$ prpc call summ \"[1, 2]\"'; /opt/venv/bin/prpc call summ '[1, 2]'
echo '$ prpc funcs'; /opt/venv/bin/prpc funcs
cd /opt/app
echo '$ python -m prpc.create_server_func'; /opt/venv/bin/python -m prpc.create_server_func | tail -n 2
echo '$ python client.py'; /opt/venv/bin/python client.py" || { cat "$work/serve.log"; exit 1; }
kill -TERM "$serve_pid" 2> /dev/null || true
for p in /proc/[0-9]*; do  # SIGTERM to the server inside: it drains and exits
  [ "$(readlink "$p/root" 2> /dev/null)" = "$target" ] && kill -TERM "${p#/proc/}" 2> /dev/null
done
wait "$serve_pid" 2> /dev/null || true
tail -n 2 "$work/serve.log"

sdist=$(ls -t "$repo"/dist/prpc-*.tar.gz 2> /dev/null | head -n 1)
if [ -n "$sdist" ]; then
  say "pip install of the source distribution there, without the build's packages: one line"
  cp "$sdist" "$target/opt/"
  inside python3 -m venv /opt/sdist-venv
  if inside /opt/sdist-venv/bin/pip install "/opt/$(basename "$sdist")" > "$work/sdist.log" 2>&1; then
    echo "fresh-machine-check: pip install of the sdist built without a compiler?" >&2; exit 1
  fi
  grep -m 1 -o 'missing: .*' "$work/sdist.log" || { tail -n 30 "$work/sdist.log"; exit 1; }
fi

say "(b) git clone and make demo, on the same root with git and make added"
git -C "$repo" bundle create "$target/opt/prpc.bundle" HEAD > /dev/null 2>&1
inside_sh 'DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  git make ca-certificates > /dev/null'
inside git -c advice.detachedHead=false clone -q /opt/prpc.bundle /root/prpc
demo_start=$(date +%s)
# apt-get's and pip's progress lines are left out; the log keeps them.
inside_sh 'cd /root/prpc && make demo' 2>&1 | tee "$work/demo.log" | grep -vE \
  '^(Get:|Hit:|Ign:|Fetched|Selecting|Preparing|Unpacking|Setting up|Processing|\(Reading|Reading|Building dependency|Need to get|After this|update-alternatives|debconf|Created symlink|invoke-rc.d|Running hooks|Adding|done\.|Updating|  [a-z0-9])' || true
grep -q 'Stopping the Python server' "$work/demo.log" || { tail -n 40 "$work/demo.log"; exit 1; }
echo "make demo took $(($(date +%s) - demo_start)) s"

say "done: the wheel and make demo work on a bare bookworm root (total $(($(date +%s) - start)) s)"

#!/usr/bin/env bash
# Prints the class path of the Apache Kafka broker the tests run (tests/support/kafka/pom.xml).
#   kafka-classpath.sh           offline: the jars must be in the local Maven repository
#   kafka-classpath.sh --fetch   resolve them from Maven Central first (what scripts/deps.sh does for the test profile)
# The class path is cached per pom (under ~/.cache/prpc) so fixtures do not start Maven each time.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pom="$here/pom.xml"
cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/prpc"
cache="$cache_dir/kafka-$(sha256sum "$pom" | cut -c1-16).classpath"

valid_cache() {
  [[ -s "$cache" ]] || return 1
  local jar
  IFS=':' read -r -a jars < "$cache"
  for jar in "${jars[@]}"; do [[ -f "$jar" ]] || return 1; done
  return 0
}

if [[ "${1:-}" != "--fetch" ]] && valid_cache; then
  cat "$cache"
  exit 0
fi

mode=(-o)
[[ "${1:-}" == "--fetch" ]] && mode=()
mkdir -p "$cache_dir"
tmp="$(mktemp "$cache_dir/cp.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
if ! log="$(mvn -B -q "${mode[@]}" -f "$pom" dependency:build-classpath -Dmdep.outputFile="$tmp" 2>&1)"; then
  echo "kafka-classpath: Maven could not resolve the Kafka broker's jars:" >&2
  echo "$log" >&2
  if [[ ${#mode[@]} -gt 0 ]]; then echo "kafka-classpath: run scripts/deps.sh kafka first" >&2; fi
  exit 1
fi
if ! grep -q 'kafka_2.13-3.9.1.jar' "$tmp"; then
  echo "kafka-classpath: the resolved class path has no kafka_2.13-3.9.1.jar" >&2
  exit 1
fi
mv "$tmp" "$cache"
trap - EXIT
cat "$cache"

"""The comparison harness: PRPC against the hiredis floor and the Python peers, one machine, one
private redis-server. Run it with scripts/bench.sh (or `make bench`); see bench/README.md."""

# The two commands a newcomer needs (see README.md), and a few more. Each target first installs
# what it needs and is missing (scripts/deps.sh: Debian packages, the project's Python
# environment .venv, the Kafka jars; silent and fast when all is there), then runs with .venv
# first on PATH.
.PHONY: demo test bench bench-cluster build wheel sdist deps clean

export PATH := $(CURDIR)/.venv/bin:$(PATH)
export VIRTUAL_ENV := $(CURDIR)/.venv

demo:            ## run the demo: a private broker, prpc-host serving example functions, calls
	@scripts/deps.sh demo
	@scripts/demo.sh

test:            ## build and run every test suite (ci and asan presets), the fuzzers, the static checks
	@scripts/deps.sh test
	@scripts/test.sh

bench:           ## the benchmark comparison (writes bench/results/)
	@scripts/deps.sh test
	@scripts/bench.sh

bench-cluster:   ## one queue over 1 vs 3 Redis Cluster masters (bench/cluster_scale.py)
	@scripts/deps.sh test
	@cmake --preset dev > /dev/null && cmake --build --preset dev
	@python3 bench/cluster_scale.py --build-dir build/dev

build:           ## a development build in build/dev
	@scripts/deps.sh build
	@cmake --preset dev > /dev/null && cmake --build --preset dev

wheel:           ## dist/prpc-<version>-<python>-<platform>.whl, with its native libraries inside
	@scripts/deps.sh wheel
	@scripts/wheel.sh

sdist:           ## dist/prpc-<version>.tar.gz, the source distribution
	@scripts/deps.sh wheel
	@scripts/wheel.sh --sdist

deps:            ## install everything the build, the demo and the tests need
	@scripts/deps.sh test

clean:
	rm -rf build dist

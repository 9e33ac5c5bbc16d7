# The two commands a newcomer needs (see README.md), and a few more.
.PHONY: demo test bench build clean

demo:            ## run the demo: a private broker, prpc-host serving example functions, calls
	@scripts/demo.sh

test:            ## build and run every test suite (ci and asan presets)
	@scripts/test.sh

bench:           ## the benchmark comparison (writes bench/results/)
	@scripts/bench.sh

build:           ## a development build in build/dev
	@cmake --preset dev > /dev/null && cmake --build --preset dev

clean:
	rm -rf build

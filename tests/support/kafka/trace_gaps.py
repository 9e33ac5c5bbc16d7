"""Finds request records that no server fetched or handed over, in a log of trace_offsets lines.

    PRPC_TEST_KAFKA_TRACE=1 ./prpc_kafka_real_test --gtest_filter=... > run.log 2>&1
    python3 tests/support/kafka/trace_gaps.py run.log

For each partition it prints the highest offset seen and the offsets below it that were never
fetched and never handed over (by any server in the log): where a lost call's record stopped.
"""

from __future__ import annotations

import collections
import re
import sys

_EVENT = re.compile(r"trace (\S+) (fetched|handed) (\S+?)\[(\d+)\]e\d+ off=(\d+)")


def main(path: str) -> int:
    seen: dict[str, dict[tuple[str, int], set[int]]] = {
        "fetched": collections.defaultdict(set),
        "handed": collections.defaultdict(set),
    }
    with open(path, encoding="utf-8", errors="replace") as log:
        for line in log:
            m = _EVENT.search(line)
            if m:
                _, event, topic, partition, offset = m.groups()
                seen[event][(topic, int(partition))].add(int(offset))
    keys = sorted(set(seen["fetched"]) | set(seen["handed"]))
    for key in keys:
        fetched, handed = seen["fetched"][key], seen["handed"][key]
        top = max(fetched | handed)
        never_fetched = [o for o in range(top + 1) if o not in fetched]
        never_handed = [o for o in range(top + 1) if o not in handed]
        print(f"{key[0]}[{key[1]}]: up to {top}; never fetched {never_fetched[:20]}; "
              f"never handed {never_handed[:20]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

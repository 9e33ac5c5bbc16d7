"""Greps every log the security suites produced for every secret they used (CTest runs it after
them: python.security.logs). Passes only when there were secrets and logs to look at and no
secret appears in any log, raw or percent-encoded; then removes the log directory.

    python3 check_logs.py <log dir>
"""

from __future__ import annotations

import pathlib
import shutil
import sys
import urllib.parse


def main(log_dir: pathlib.Path) -> int:
    secrets_file = log_dir / "secrets"
    if not secrets_file.exists():
        print(f"no secrets were recorded in {log_dir}: did the suites run?")
        return 1
    secrets = [line.split(" ", 1) for line in secrets_file.read_text().splitlines() if line]
    # Kafka's partition segments are *.log files too, but data, not logs.
    logs = sorted(p for p in log_dir.rglob("*.log")
                  if p.is_file() and "data" not in p.relative_to(log_dir).parts)
    # The suites' own evidence that they logged something worth grepping.
    text = {p: p.read_bytes() for p in logs}
    total = sum(len(t) for t in text.values())
    if len(secrets) < 3 or len(logs) < 5 or total < 10_000:
        print(f"too little to check: {len(secrets)} secrets, {len(logs)} logs, {total} bytes")
        return 1
    leaks = []
    for kind, value in secrets:
        forms = {value, urllib.parse.quote(value, safe="")}
        for path, data in text.items():
            for form in forms:
                if form.encode() in data:
                    leaks.append(f"{kind} found in {path}")
    kinds = sorted({kind for kind, _ in secrets})
    print(f"{len(secrets)} secrets ({', '.join(kinds)}) in {len(logs)} logs ({total} bytes)")
    if leaks:
        print("\n".join(leaks))
        return 1
    shutil.rmtree(log_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(pathlib.Path(sys.argv[1])))

"""What the failover suites serve and how they count executions: `work` appends a start and an
end line (tag, pid, time) to a file, so a test counts runs, not replies."""

from __future__ import annotations

from pathlib import Path

_APP = '''
import os, time
from prpc import AppServer

app = AppServer("{BROKER}", "{URL}", "thread", 4, None, "{QUEUE}")

@app.decorator_reg_func()
def work(seconds, log, tag):
    with open(log, "a") as f:
        f.write(f"start {tag} {os.getpid()} {time.time():.2f}\\n")
    time.sleep(seconds)
    with open(log, "a") as f:
        f.write(f"end {tag} {os.getpid()} {time.time():.2f}\\n")
    return tag

@app.decorator_reg_func()
def pid():
    return os.getpid()

if __name__ == "__main__":
    app.start()
'''


def app_source(broker: str) -> str:
    """The server's source for `broker`, with {URL} and {QUEUE} still to fill in."""
    return _APP.replace("{BROKER}", broker)


def lines(log: Path, word: str) -> list[list[str]]:
    """The execution log's lines that start with `word` ("start" or "end"), split."""
    if not log.exists():
        return []
    return [line.split() for line in log.read_text().splitlines() if line.startswith(word + " ")]

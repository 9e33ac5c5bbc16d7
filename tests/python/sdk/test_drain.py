"""SIGTERM: the server stops taking requests, lets calls in flight finish, and exits cleanly."""

from __future__ import annotations

import signal
import time

APP = '''
import datetime, time
from prpc import AppServer

app = AppServer("redis", "{URL}", "thread", 2, None, "{QUEUE}",
                drain_grace=datetime.timedelta(seconds=10))

@app.decorator_reg_func()
def slow(seconds):
    time.sleep(seconds)
    return "finished"

if __name__ == "__main__":
    app.start()
    print("drained", app.stats())
'''


def test_sigterm_lets_calls_in_flight_finish(start_app, client):
    server = start_app(APP)
    task = client.call("slow", 1.0)
    time.sleep(0.3)
    server.proc.send_signal(signal.SIGTERM)
    assert task.sync_wait_result_task(20) == "finished"
    assert server.proc.wait(20) == 0
    assert "drained" in server.output()
    # A request sent after the drain began waits for the next server, it is not lost.
    late = client.call("slow", 0)
    time.sleep(0.3)
    assert not late.is_done_task()
    start_app(APP, name="app2.py")
    assert late.sync_wait_result_task(30) == "finished"

"""The seed's raw-protocol example for other languages, with redis-py, corrected where the
seed's snippet has bugs (it reads `redis.get` from the module and parses a bytes message)."""

from __future__ import annotations

import json
import time
import uuid

APP = '''
import time
from prpc import AppServer

app = AppServer("redis", "{URL}", "thread", 2, None, "{QUEUE}")

@app.decorator_reg_func()
def hello_world():
    return "hello_world"

@app.decorator_reg_func()
def summ(a, b, z=0.5):
    return a + b + z

if __name__ == "__main__":
    app.start()
'''


def test_raw_request_and_result_key(start_app, redis_server, queue):
    import redis

    start_app(APP)
    queue_name = queue
    message = {
        "func_name": "hello_world",
        "func_args": [],
        "func_kwargs": {},
        "message_id": str(uuid.uuid4()),
    }
    client = redis.from_url(redis_server.url)
    client.xadd(f"prpc_raw_{queue_name}", {"message": json.dumps(message)})

    message_id = message["message_id"]
    result = None
    deadline = time.monotonic() + 20
    while result is None and time.monotonic() < deadline:
        result = client.get(f"prpc_feedback_raw_{queue_name}_{message_id}")
        time.sleep(0.02)
    assert result is not None
    result = json.loads(result)
    assert result["result"] == "hello_world"
    assert result["exception_info"] is None
    assert result["message_id"] == message_id  # the same string, not {"hex": ...}
    assert list(result)[:8] == ["func_name", "func_args", "func_kwargs", "message_id", "result",
                                "exception_info", "date_create_message", "date_done_message"]
    assert client.ttl(f"prpc_feedback_raw_{queue_name}_{message_id}") > 0


def test_raw_error_reply(start_app, redis_server, queue):
    import redis

    start_app(APP)
    client = redis.from_url(redis_server.url)
    message_id = str(uuid.uuid4())
    client.xadd(f"prpc_raw_{queue}", {"message": json.dumps(
        {"func_name": "summ", "func_args": [1], "func_kwargs": {}, "message_id": message_id})})
    key = f"prpc_feedback_raw_{queue}_{message_id}"
    deadline = time.monotonic() + 20
    while not client.exists(key) and time.monotonic() < deadline:
        time.sleep(0.02)
    result = json.loads(client.get(key))
    assert result["result"] is None
    assert result["exception_info"].startswith("TypeError: summ() missing 1 required positional")

"""A Redis server that behaves on the wire as the original PRPC's server does (ORIGINAL.md 4.2),
for testing what our clients do against it. It serves a few fixed functions.

    python original_server.py      # PRPC_URL_BROKER and PRPC_QUEUE_NAME from the environment

Creates the group from "$" on both streams, reads with XREADGROUP as consumer
"<uuid4>_0", decodes with jsonpickle, stores the result at prpc_feedback_{q}_{message_id} (raw:
prpc_feedback_raw_{q}_{message_id}, as jsonpickle's unpicklable form) with EX 21600, then XACKs.
It knows nothing of reply_to. Prints "READY" once its group exists.
"""

import os
import signal
import time
import uuid

import redis
from prpc.prpcmessage import PRPCMessage

URL = os.environ["PRPC_URL_BROKER"]
QUEUE = os.environ["PRPC_QUEUE_NAME"]
GROUP = "prpc_group_consumers"
STREAMS = {f"prpc_{QUEUE}": "python", f"prpc_raw_{QUEUE}": "raw"}


def summ(a, b, z=0.5):
    return a + b + z


def hello_world():
    return "hello_world"


def sleepy(seconds):
    time.sleep(seconds)
    return seconds


FUNCTIONS = {"summ": summ, "hello_world": hello_world, "sleepy": sleepy,
             "ping": lambda: "pong"}
running = True


def stop(*_):
    global running
    running = False


def main():
    signal.signal(signal.SIGTERM, stop)
    client = redis.Redis.from_url(URL)
    for stream in STREAMS:
        try:
            client.xgroup_create(stream, GROUP, id="$", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
    consumer = f"{uuid.uuid4()}_0"
    print("READY", flush=True)
    while running:
        batch = client.xreadgroup(GROUP, consumer, {s: ">" for s in STREAMS}, count=1,
                                  block=200)
        for stream, entries in batch or []:
            stream = stream.decode()
            for entry_id, fields in entries:
                text = fields[b"message"]
                if STREAMS[stream] == "raw":
                    message = PRPCMessage.deserialize_raw(text)
                    feedback = f"prpc_feedback_raw_{QUEUE}_{message.message_id}"
                else:
                    message = PRPCMessage.deserialize(text)
                    feedback = f"prpc_feedback_{QUEUE}_{message.message_id}"
                func = FUNCTIONS.get(message.func_name)
                try:
                    if func is None:
                        raise LookupError(f"func name '{message.func_name}' not found in server")
                    message.message_to_done(result=func(*message.func_args,
                                                        **message.func_kwargs))
                except Exception as e:
                    message.message_to_done(exception_info=str(e))
                payload = message.serialize(serialize_raw=STREAMS[stream] == "raw")
                client.set(feedback, payload, ex=21600)
                client.xack(stream, GROUP, entry_id)


if __name__ == "__main__":
    main()

"""A server that behaves on the wire as the original PRPC's server does (ORIGINAL.md 4.2, 4.3),
for testing what our clients do against it. It serves a few fixed functions.

    python original_server.py      # PRPC_TYPE_BROKER, PRPC_URL_BROKER, PRPC_QUEUE_NAME

Redis: creates the group from "$" on both streams, reads with XREADGROUP as consumer
"<uuid4>_0", decodes with jsonpickle, stores the result at prpc_feedback_{q}_{message_id} (raw:
prpc_feedback_raw_{q}_{message_id}, as jsonpickle's unpicklable form) with EX 21600, then XACKs.
Kafka: a consumer in group prpc_group_consumers (offset reset "latest", no auto-commit) on
prpc_{q} and prpc_raw_{q}; commits, then produces the result to prpc_feedback_{q} (raw:
prpc_feedback_raw_{q}) without a key. It knows nothing of reply_to. Prints "READY" once it
reads.
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


def run(message):
    func = FUNCTIONS.get(message.func_name)
    try:
        if func is None:
            raise LookupError(f"func name '{message.func_name}' not found in server")
        message.message_to_done(result=func(*message.func_args, **message.func_kwargs))
    except Exception as e:
        message.message_to_done(exception_info=str(e))


def serve_kafka():
    import kafka

    topics = {f"prpc_{QUEUE}": "python", f"prpc_raw_{QUEUE}": "raw"}
    consumer = kafka.KafkaConsumer(*topics, bootstrap_servers=URL, group_id=GROUP,
                                   auto_offset_reset="latest", enable_auto_commit=False,
                                   client_id="aiokafka-0.11.0")
    producer = kafka.KafkaProducer(bootstrap_servers=URL, client_id="aiokafka-0.11.0")
    while not consumer.assignment():
        consumer.poll(timeout_ms=100)
    print("READY", flush=True)
    while running:
        for records in consumer.poll(timeout_ms=200).values():
            for record in records:
                raw = topics[record.topic] == "raw"
                text = record.value
                message = (PRPCMessage.deserialize_raw(text) if raw
                           else PRPCMessage.deserialize(text))
                run(message)
                consumer.commit()  # before the reply, as the original did
                feedback = f"prpc_feedback_raw_{QUEUE}" if raw else f"prpc_feedback_{QUEUE}"
                producer.send(feedback, message.serialize(serialize_raw=raw).encode())
                producer.flush()
    consumer.close()


def main():
    signal.signal(signal.SIGTERM, stop)
    if os.environ.get("PRPC_TYPE_BROKER") == "kafka":
        serve_kafka()
        return
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
                run(message)
                payload = message.serialize(serialize_raw=STREAMS[stream] == "raw")
                client.set(feedback, payload, ex=21600)
                client.xack(stream, GROUP, entry_id)


if __name__ == "__main__":
    main()

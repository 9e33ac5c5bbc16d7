"""A client that behaves on the wire as the original PRPC's client does (ORIGINAL.md 2.3, 4.2,
4.3), for testing that our servers answer it.

    python original_client.py '[["summ", [1, 2], {}], ["hello_world", [], {}]]'

Configured like the original, by PRPC_TYPE_BROKER, PRPC_URL_BROKER and PRPC_QUEUE_NAME; the
poll interval (the original's 1 s) by ORIGINAL_POLL_SECONDS and the wait limit by
ORIGINAL_TIMEOUT_SECONDS. Sends every call first (each one a jsonpickle-encoded PRPCMessage
whose func_args is the tuple the original's stubs pass), then waits for each as the original's
AwaitableTask does:
- Redis: GET prpc_feedback_{q}_{message_id}, then DEL it, once per poll;
- Kafka: a new consumer of prpc_feedback_{q} (no group, offset reset "latest") that seeks every
  partition to the request's creation time and jsonpickle-decodes each record until one has the
  request's message_id; a record that is not a PRPCMessage fails the call, as in the original.
Prints one JSON line per call.
"""

import datetime
import json
import os
import sys
import time

from prpc.prpcmessage import PRPCMessage

TYPE = os.environ["PRPC_TYPE_BROKER"]
URL = os.environ["PRPC_URL_BROKER"]
QUEUE = os.environ["PRPC_QUEUE_NAME"]
POLL = float(os.environ.get("ORIGINAL_POLL_SECONDS", "1"))
TIMEOUT = float(os.environ.get("ORIGINAL_TIMEOUT_SECONDS", "60"))


class RedisSide:
    def __init__(self):
        import redis

        self.redis = redis
        self.pool = redis.ConnectionPool.from_url(URL)

    def send(self, message):
        client = self.redis.Redis(connection_pool=self.pool)
        client.xadd(f"prpc_{QUEUE}", {"message": message.serialize()})

    def search(self, message, state):
        client = self.redis.Redis(connection_pool=self.pool)
        key = f"prpc_feedback_{QUEUE}_{message.message_id}"
        found = client.get(key)
        client.delete(key)  # unconditionally, as the original did
        return None if found is None else PRPCMessage.deserialize(found)


class KafkaSide:
    def __init__(self):
        import kafka

        self.kafka = kafka
        self.producer = kafka.KafkaProducer(bootstrap_servers=URL)

    def send(self, message):
        self.producer.send(f"prpc_{QUEUE}", message.serialize().encode())

    def search(self, message, state):
        consumer = state.get("consumer")
        topic = f"prpc_feedback_{QUEUE}"
        if consumer is None:
            consumer = self.kafka.KafkaConsumer(topic, bootstrap_servers=URL,
                                                auto_offset_reset="latest",
                                                consumer_timeout_ms=1000)
            while not consumer.assignment():
                consumer.poll(timeout_ms=100)
            stamp = int(message.date_create_message.timestamp() * 1000)
            partitions = [self.kafka.TopicPartition(topic, p)
                          for p in consumer.partitions_for_topic(topic)]
            for partition, offset in consumer.offsets_for_times(
                    {p: stamp for p in partitions}).items():
                if offset is not None:
                    consumer.seek(partition, offset.offset)
            state["consumer"] = consumer
        for record in consumer:
            reply = PRPCMessage.deserialize(record.value)
            if reply.message_id == message.message_id:
                consumer.close()
                return reply
        return None


def main():
    calls = json.loads(sys.argv[1])
    side = RedisSide() if TYPE == "redis" else KafkaSide()
    tasks = []
    for func_name, args, kwargs in calls:
        message = PRPCMessage(func_name, tuple(args), kwargs)
        side.send(message)
        tasks.append((message, {}))
    if TYPE == "kafka":
        side.producer.flush()
    started = datetime.datetime.now()
    for message, state in tasks:
        reply = None
        error = None
        while reply is None:
            try:
                reply = side.search(message, state)
            except Exception as e:  # the original let it reach its caller
                error = f"{type(e).__name__}: {e}"
                break
            if reply is None:
                if (datetime.datetime.now() - started).total_seconds() > TIMEOUT:
                    break
                time.sleep(POLL)
        out = {"func_name": message.func_name, "message_id": str(message.message_id),
               "request": message.serialize(), "error": error, "done": reply is not None}
        if reply is not None:
            out.update(result=reply.result, exception_info=reply.exception_info,
                       reply_type=type(reply).__module__ + "." + type(reply).__name__,
                       message_id_type=type(reply.message_id).__name__,
                       time_execution=(reply.date_done_message
                                       - reply.date_create_message).total_seconds())
        print(json.dumps(out, default=repr), flush=True)


if __name__ == "__main__":
    main()

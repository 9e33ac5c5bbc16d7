#!/usr/bin/env python3
"""Encode + decode of a typical ~1 KB PRPC message: our converter + envelope codec against
Python's jsonpickle 4.x. A benchmark, not a test: it prints numbers.

    PRPC_CODEC_TEST_DIR=build/dev/python python3 bench/codec_bench.py [--seconds 2]

Ours = the converter (Python objects <-> fragments, C++ with the C API) plus the envelope codec
(fragments <-> bytes, C++ without Python), as the SDK will run them. Theirs =
jsonpickle.encode(PRPCMessage) / jsonpickle.decode(bytes).
"""
import argparse
import datetime
import decimal
import os
import sys
import time
import uuid
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.environ.get("PRPC_CODEC_TEST_DIR", os.path.join(ROOT, "build", "dev", "python")))
sys.path.insert(0, os.path.join(ROOT, "tests", "python", "codec"))
warnings.filterwarnings("ignore", category=DeprecationWarning)

import jsonpickle  # noqa: E402

import _prpc_codec_test as codec  # noqa: E402
import message_helper  # noqa: E402

PRPCMessage = message_helper.install()
UTC = datetime.timezone.utc


def typical_message():
    order = {
        "order_id": 918273,
        "customer": {"id": 4412, "name": "Ada Lovelace", "email": "ada@example.org",
                     "tags": ["vip", "newsletter"]},
        "lines": [
            {"sku": "A-1001", "qty": 2, "price": 19.99, "title": "Widget, blue"},
            {"sku": "B-2002", "qty": 1, "price": 5.5, "title": "Gadget"},
            {"sku": "C-3003", "qty": 10, "price": 0.25, "title": "Screw M3"},
        ],
        "placed_at": datetime.datetime(2024, 11, 6, 9, 0, 5, 123456, tzinfo=UTC),
        "note": "leave at the door, ring twice",
    }
    return message_helper.make(
        PRPCMessage, "process_order", [order, True], {"currency": "EUR", "total": decimal.Decimal("45.48"),
                                         "retries": 3, "flags": {"gift": False, "express": True}},
        uuid.UUID("1b4e28ba-2fa1-41d2-883f-0016d3cca427"),
        {"status": "accepted", "warehouse": "DE-3", "eta_days": [2, 3], "total": decimal.Decimal("45.48")},
        None, datetime.datetime(2024, 11, 6, 9, 0, 5, 200000, tzinfo=UTC),
        datetime.datetime(2024, 11, 6, 9, 0, 5, 350000, tzinfo=UTC), reply_to="prpc_reply_7f3a")


def ours_encode(msg):
    fields = {
        "func_name": msg.func_name,
        "func_args": codec.encode(msg.func_args),
        "func_kwargs": codec.encode(msg.func_kwargs),
        "message_id": str(msg.message_id),
        "result": codec.encode(msg.result),
        "exception_info": msg.exception_info,
        "date_create_message": msg.date_create_message.isoformat(),
        "date_done_message": msg.date_done_message.isoformat(),
        "reply_to": msg.reply_to,
    }
    return codec.envelope_encode(fields)


def ours_decode(data):
    f = codec.envelope_decode(data)
    return (codec.decode(f["func_args"]), codec.decode(f["func_kwargs"]), codec.decode(f["result"]),
            f["message_id"], f["date_create_message"], f["date_done_message"])


def theirs_encode(msg):
    return jsonpickle.encode(msg)


def theirs_decode(data):
    return jsonpickle.decode(data)


def measure(fn, arg, seconds):
    """Best per-call time over repeated batches (the least disturbed run)."""
    batch = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(batch):
            fn(arg)
        if time.perf_counter() - t0 > 0.05:
            break
        batch *= 2
    best = float("inf")
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        for _ in range(batch):
            fn(arg)
        best = min(best, (time.perf_counter() - t0) / batch)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    args = parser.parse_args()

    msg = typical_message()
    data = ours_encode(msg)
    reference = theirs_encode(msg)
    assert data.decode() == reference, "our envelope differs from jsonpickle's"
    print(f"message: {len(data)} bytes, jsonpickle {jsonpickle.__version__}, "
          f"Python {sys.version.split()[0]}")

    t = {
        "ours encode": measure(ours_encode, msg, args.seconds),
        "jsonpickle encode": measure(theirs_encode, msg, args.seconds),
        "ours decode": measure(ours_decode, data, args.seconds),
        "jsonpickle decode": measure(theirs_decode, data, args.seconds),
    }
    for name, secs in t.items():
        print(f"{name:20s} {secs * 1e6:9.2f} us")
    enc = t["jsonpickle encode"] / t["ours encode"]
    dec = t["jsonpickle decode"] / t["ours decode"]
    both = (t["jsonpickle encode"] + t["jsonpickle decode"]) / (t["ours encode"] + t["ours decode"])
    print(f"speed-up: encode {enc:.1f}x, decode {dec:.1f}x, encode+decode {both:.1f}x")


if __name__ == "__main__":
    main()

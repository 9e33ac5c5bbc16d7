"""The original PRPC's example server, with the broker taken from the environment.

Run:  PRPC_URL_BROKER=redis://127.0.0.1:6379/0 python examples/python/server.py
"""
import datetime
import os
import time

from prpc.app_server import AppServer

app = AppServer(
    os.environ.get("PRPC_TYPE_BROKER", "redis"),
    os.environ.get("PRPC_URL_BROKER", "redis://localhost:6379/0"),
    "thread",
    4,
    datetime.timedelta(seconds=100),
    os.environ.get("PRPC_QUEUE_NAME", "task_prpc"),
)


@app.decorator_reg_func("process")
def summ(a: int | float, b, z=0.5):
    return a + b + z


@app.decorator_reg_func()
def hello_world():
    time.sleep(0.5)
    return "hello_world"


@app.decorator_reg_func("async")
async def greet(name: str, *, excited: bool = False) -> str:
    return f"hello, {name}{'!' if excited else '.'}"


@app.decorator_reg_func()
def divide(a: float, b: float) -> float:
    return a / b


if __name__ == "__main__":  # required, especially with `process` workers
    app.start()

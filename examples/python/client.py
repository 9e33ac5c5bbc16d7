"""Calls the example server through the stubs `python -m prpc.create_server_func` wrote.

Put it beside server_func.py and run it with the same PRPC_* variables as the server.
"""
import asyncio
import datetime

import prpc
from server_func import divide, greet, hello_world, summ


def main() -> None:
    task = summ(1, 2)  # a prpc.AwaitableTask: the call is already on its way
    print("summ(1, 2) =", task.sync_wait_result_task(10))
    print("summ(1, 2, z=10) =", summ(1, 2, z=10).result(timeout=10))
    # Rich values travel as jsonpickle: a date plus a timedelta, computed by a worker process.
    day = summ(datetime.date(2024, 2, 28), datetime.timedelta(days=1), z=datetime.timedelta(0))
    print("summ(date(2024, 2, 28), timedelta(days=1)) =", repr(day.result(10)))

    hello = hello_world()
    print("hello_world() =", hello.sync_wait_result_task(10),
          f"(answered in {hello.time_execution.total_seconds():.2f} s)")

    async def concurrently() -> list[str]:
        return await asyncio.gather(*(greet(n, excited=True) for n in ("Ada", "Grace", "Linus")))

    print("three greet() calls awaited together:", asyncio.run(concurrently()))

    try:
        divide(1, 0).result(10)
    except prpc.RemoteError as e:
        print("divide(1, 0) raised prpc.RemoteError:", e)


if __name__ == "__main__":
    main()

"""The client process of one (system, workload) measurement: waits until the server answers,
runs the driver and prints one line `RESULT {json}` for the orchestrator. One process per
measurement, so no system's client library or threads linger into the next."""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import inspect
import json
import os
import sys
import traceback

from . import driver
from .systems import BY_NAME, Caller, Context
from .workloads import check_result

PROBE_TIMEOUT = 1.0


def _measure(caller: Caller, workload: str, plan: driver.Plan) -> driver.Outcome:
    check = lambda value: check_result(workload, value)  # noqa: E731
    # A request sent before the server subscribed may never be answered: probe with short
    # timeouts so that readiness does not wait out a whole call timeout.
    probe = functools.partial(caller.call, timeout=PROBE_TIMEOUT)
    if caller.is_async:
        async def go() -> driver.Outcome:
            try:
                await driver.wait_ready_async(probe, check, plan.ready_timeout)
                return await driver.run_async(caller.call, plan)
            finally:
                closed = caller.close()
                if inspect.isawaitable(closed):
                    await closed
        return asyncio.run(go())
    try:
        driver.wait_ready_sync(probe, check, plan.ready_timeout)
        return driver.run_sync(caller.call, plan)
    finally:
        caller.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--system", required=True)
    parser.add_argument("--workload", required=True)
    parser.add_argument("--plan", required=True, help="the driver.Plan as JSON")
    parser.add_argument("--ctx", required=True, help="the systems.Context as JSON")
    args = parser.parse_args()
    system = BY_NAME[args.system]
    ctx = Context.from_json(args.ctx)
    plan_fields = json.loads(args.plan)
    plan_fields["levels"] = tuple(plan_fields["levels"])
    plan = driver.Plan(**plan_fields)
    try:
        adapter = importlib.import_module(f"{__package__}.systems.{system.module}")
        caller = adapter.client(ctx, system.variant, args.workload)
        outcome = _measure(caller, args.workload, plan)
        result = {"outcome": outcome.to_json()}
    except Exception as exc:  # noqa: BLE001 - reported as n/a by the orchestrator
        traceback.print_exc(file=sys.stderr)
        result = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    # Some client libraries leave non-daemon threads behind; the result is already out.
    os._exit(code)

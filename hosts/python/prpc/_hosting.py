"""How prpc-host serves a Python application: it embeds an interpreter and calls serve(), or,
where it has no embedding module (a wheel), runs `python -m prpc._hosting MODULE:ATTR [--check]`
with the configuration it resolved in PRPC_HOSTING_CONFIG (a JSON object of strings)."""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback

from . import _logging
from .app_server import AppServer
from .exceptions import PRPCError

__all__ = ["serve"]

# prpc-host's documented exit codes (docs/hosts.md).
EXIT_OK, EXIT_FAILURE, EXIT_CONFIG, EXIT_PLUGIN, EXIT_UNREACHABLE = 0, 1, 3, 4, 5


def _error(message: str) -> None:
    print(f"prpc-host: error: {message}", file=sys.stderr, flush=True)


def _exit_code(error: PRPCError) -> int:
    from .exceptions import BrokerError, ConfigurationError, PluginError, RegistrationError

    if isinstance(error, BrokerError):
        return EXIT_UNREACHABLE
    if isinstance(error, PluginError):
        return EXIT_PLUGIN
    if isinstance(error, (ConfigurationError, RegistrationError)):
        return EXIT_CONFIG
    return EXIT_FAILURE


def serve(spec: str, config: dict[str, str], check: bool = False) -> int:
    """Imports `module:attribute`, an AppServer, and serves it with the host's configuration
    (keys the host sets win over the application's constructor arguments). With `check`, only
    reports what it would serve."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        _error(f"app must look like 'module:attribute', not {spec!r}")
        return EXIT_CONFIG
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # like `python -m`: the working directory is importable
    try:
        module = importlib.import_module(module_name)
    except Exception as e:
        last = traceback.format_exception_only(type(e), e)[-1].strip()
        _error(f"cannot import {module_name!r}: {last}")
        return EXIT_CONFIG
    app = getattr(module, attribute, None)
    if not isinstance(app, AppServer):
        found = "nothing" if app is None else type(app).__name__
        _error(f"{spec} is {found}, not a prpc.AppServer")
        return EXIT_CONFIG
    if not app.functions:
        _error(f"{spec} has no registered functions")
        return EXIT_CONFIG
    app._options.update(config)
    _logging.stop()  # the host's log: its own format on stderr (PRPC_LOG_FORMAT)
    if check:
        print(f"app {spec}: {len(app.functions)} functions")
        for name, worker in app.functions.items():
            print(f"  {name}  [{worker}]")
        return EXIT_OK
    try:
        app.start()
    except PRPCError as e:
        _error(str(e))
        return _exit_code(e)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    check = "--check" in args
    specs = [a for a in args if a != "--check"]
    if len(specs) != 1:
        _error("usage: python -m prpc._hosting MODULE:ATTR [--check]")
        return 2
    try:
        # Taken out of the environment: the application's own child processes need not see it.
        config = json.loads(os.environ.pop("PRPC_HOSTING_CONFIG", "{}"))
    except ValueError as e:
        _error(f"PRPC_HOSTING_CONFIG is not JSON: {e}")
        return EXIT_CONFIG
    if not isinstance(config, dict):
        _error("PRPC_HOSTING_CONFIG must be a JSON object")
        return EXIT_CONFIG
    return serve(specs[0], {str(k): str(v) for k, v in config.items()}, check)


if __name__ == "__main__":
    sys.exit(main())

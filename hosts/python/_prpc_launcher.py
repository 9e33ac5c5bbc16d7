"""The commands the prpc wheel installs, `prpc` and `prpc-host`: they run the programs bundled in
the package (prpc/bin; they find the package's plugins in prpc/plugins by themselves) with this
Python in PRPC_PYTHON, for `prpc gen-stubs` and for serving Python applications. A module of its
own, beside the package rather than in it, so a command starts without importing prpc (its
extension, asyncio): the launcher only finds the package's directory."""

from __future__ import annotations

import importlib.util
import os
import sys


def _package_dir() -> str:
    spec = importlib.util.find_spec("prpc")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        sys.exit("prpc: error: the prpc package is not installed for " + sys.executable)
    return os.path.abspath(list(spec.submodule_search_locations)[0])


def _run(program: str) -> None:
    package = _package_dir()
    executable = os.path.join(package, "bin", program)
    if not os.access(executable, os.X_OK):  # the build tree's package: <build>/python/prpc
        built = os.path.join(os.path.dirname(os.path.dirname(package)), "bin", program)
        executable = built if os.access(built, os.X_OK) else executable
    if not os.access(executable, os.X_OK):
        print(f"{program}: error: this prpc package has no {executable} (it was installed "
              "without the host programs)", file=sys.stderr)
        sys.exit(4)
    os.environ.setdefault("PRPC_PYTHON", sys.executable)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(executable, [program, *sys.argv[1:]])


def prpc() -> None:
    """`prpc`: call, funcs, stats, dead-letters, gen-stubs and serve (see prpc --help)."""
    _run("prpc")


def prpc_host() -> None:
    """`prpc-host`: serves a configuration's functions or a Python application (--app)."""
    _run("prpc-host")

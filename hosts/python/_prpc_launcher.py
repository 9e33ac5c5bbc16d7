"""The commands a wheel installs, `prpc` and `prpc-host`: they run the programs bundled in the
package (prpc/bin; a wheel's find the package's plugins in prpc/plugins by themselves) with this
Python in PRPC_PYTHON, for `prpc gen-stubs` and for serving Python applications."""

from __future__ import annotations

import os
import sys

_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def _run(program: str) -> None:
    executable = os.path.join(_PACKAGE, "bin", program)
    if not os.access(executable, os.X_OK):  # the build tree's package: <build>/python/prpc
        built = os.path.join(os.path.dirname(os.path.dirname(_PACKAGE)), "bin", program)
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

"""`python -m prpc ...` is the `prpc` command (prpc serve module:app, prpc call ...)."""

from ._commands import prpc

prpc()

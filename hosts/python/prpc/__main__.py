"""`python -m prpc ...` is the `prpc` command (prpc serve module:app, prpc call ...)."""

from _prpc_launcher import prpc

prpc()

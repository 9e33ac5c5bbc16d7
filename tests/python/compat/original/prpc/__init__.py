"""A stand-in for the original PRPC's package (GitHub Arxonait/prpc, HEAD 5a0547b), written for
these tests: just what its clients and servers put on the wire. Never imported by the tests'
own process; the scripts beside it run in a child process with PYTHONPATH pointing here and at
the original's pinned dependencies (jsonpickle 3.3.0, redis 5.1.0, pydantic 2.9.2,
kafka-python 2.0.2)."""

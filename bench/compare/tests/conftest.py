"""The harness's smoke suite (CTest label `bench`, registered only when PRPC_BENCH_SMOKE is set).
PRPC_BENCH_BUILD_DIR names the build tree whose prpc package and programs the harness uses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def build_dir() -> Path:
    value = os.environ.get("PRPC_BENCH_BUILD_DIR")
    if not value:
        pytest.fail("set PRPC_BENCH_BUILD_DIR to the build tree (CTest does)")
    return Path(value)

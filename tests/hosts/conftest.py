"""Fixtures for the host tests: the built prpc-host and prpc binaries, and the shared ones."""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python" / "support"))
from sdk_fixtures import *  # noqa: E402,F401,F403 - the shared fixtures

BIN = Path(os.environ.get("PRPC_BIN_DIR",
                          Path(__file__).resolve().parents[2] / "build" / "dev" / "bin"))


@pytest.fixture
def bin_dir() -> Path:
    assert (BIN / "prpc-host").exists(), f"prpc-host is not built in {BIN}"
    return BIN

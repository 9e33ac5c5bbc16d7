import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from sdk_fixtures import *  # noqa: F403 - the shared fixtures

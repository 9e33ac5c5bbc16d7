import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from original_fixture import original  # noqa: F401 - runs the original's stand-ins
from sdk_fixtures import *  # noqa: F403 - the shared fixtures

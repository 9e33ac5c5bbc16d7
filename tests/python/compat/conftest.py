import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "support"))
from sdk_fixtures import *  # noqa: E402,F401,F403 - the shared fixtures
from original_fixture import original  # noqa: E402,F401 - runs the original's stand-ins

import os
import sys
import warnings

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
if os.environ.get("PRPC_CODEC_TEST_DIR"):
    sys.path.insert(0, os.environ["PRPC_CODEC_TEST_DIR"])

# jsonpickle 4 warns on every call that keys=True becomes the default in 5.0.
warnings.filterwarnings("ignore", category=DeprecationWarning, module="jsonpickle")


@pytest.fixture(scope="session")
def codec():
    import _prpc_codec_test

    return _prpc_codec_test


@pytest.fixture(scope="session")
def message_class():
    import message_helper

    return message_helper.install()

# No example database in the source tree; runs are reproducible from the printed seed.
from hypothesis import settings as _settings  # noqa: E402

_settings.register_profile("prpc_codec", database=None, print_blob=True)
_settings.load_profile("prpc_codec")

"""The broker fixtures' own tests: the fixtures live one directory up."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kafka_cluster_fixture import kafka_cluster  # noqa: F401
from kafka_sasl_fixture import kafka_sasl_ssl  # noqa: F401
from redis_acl_fixture import redis_acl_server  # noqa: F401
from redis_cluster_fixture import redis_cluster  # noqa: F401
from redis_sentinel_fixture import redis_sentinel  # noqa: F401

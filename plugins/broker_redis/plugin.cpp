// The plugin's one exported symbol; the broker itself lives in prpc_broker_redis_core.
#include "prpc/sdk/plugin.hpp"

#include "prpc/broker_redis/redis_broker.hpp"
#include "prpc/version.h"

PRPC_PLUGIN("broker_redis", PRPC_VERSION_STRING,
            "Redis Streams broker on hiredis: consumer groups, pending-entry recovery, result "
            "keys with a TTL, pushed replies",
            prpc::redis::RedisBroker)

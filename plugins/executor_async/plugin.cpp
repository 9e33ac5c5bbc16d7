#include "async_executor.hpp"
#include "prpc/version.h"

PRPC_PLUGIN("executor_async", PRPC_VERSION_STRING,
            "The async executor: many calls in flight that complete asynchronously",
            prpc::async::AsyncExecutor)

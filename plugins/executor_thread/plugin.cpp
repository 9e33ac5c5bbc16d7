#include "prpc/version.h"
#include "thread_executor.hpp"

PRPC_PLUGIN("executor_thread", PRPC_VERSION_STRING, "The thread-pool executor",
            prpc::thread::ThreadExecutor)

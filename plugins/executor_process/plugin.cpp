#include "process_executor.hpp"
#include "prpc/version.h"

PRPC_PLUGIN("executor_process", PRPC_VERSION_STRING,
            "The process executor: calls run in worker processes", prpc::process::ProcessExecutor)

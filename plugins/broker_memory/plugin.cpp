#include "memory_broker.hpp"
#include "prpc/version.h"

PRPC_PLUGIN("broker_memory", PRPC_VERSION_STRING, "The in-process broker",
            prpc::memory::MemoryBroker)

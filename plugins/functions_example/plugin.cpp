#include "example_functions.hpp"
#include "prpc/version.h"

PRPC_PLUGIN("functions_example", PRPC_VERSION_STRING, "Example native functions",
            prpc::example::ExampleFunctions)

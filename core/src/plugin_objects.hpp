// Host-side C++ objects over a plugin's C vtables. Each keeps its library loaded while it lives.
#pragma once

#include <memory>

#include "prpc/broker.hpp"
#include "prpc/codec.hpp"
#include "prpc/executor.hpp"
#include "prpc/functions.hpp"
#include "prpc/plugin_abi.h"

namespace prpc::details {

// Whatever keeps a loaded library alive (owned by the registry and by every object made from it).
using LibraryHandle = std::shared_ptr<const void>;

Result<std::shared_ptr<Broker>> make_plugin_broker(LibraryHandle lib, const prpc_broker_vtable* vt,
                                                   const prpc_config* config);
Result<std::shared_ptr<Codec>> make_plugin_codec(LibraryHandle lib, const prpc_codec_vtable* vt,
                                                 const prpc_config* config);
Result<std::shared_ptr<Executor>> make_plugin_executor(LibraryHandle lib,
                                                       const prpc_executor_vtable* vt,
                                                       const prpc_config* config,
                                                       std::shared_ptr<Invoker> invoker);
Result<std::shared_ptr<FunctionTable>> make_plugin_functions(LibraryHandle lib,
                                                             const prpc_functions_vtable* vt,
                                                             const prpc_config* config);

}  // namespace prpc::details

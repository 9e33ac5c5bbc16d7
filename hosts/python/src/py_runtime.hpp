// What the extension keeps once per process: the plugin registry (plugins are loaded once) and
// configuration assembly for clients and servers.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "prpc/config.hpp"
#include "prpc/plugin_loader.hpp"

namespace prpc::python {

// Directories searched before the defaults; the package passes its own plugins/ directory.
void set_plugin_dirs(const std::vector<std::string>& dirs);
PluginRegistry& registry();

// The PRPC_* environment, then the given keys (explicit arguments win over the environment).
Config make_config(const std::map<std::string, std::string>& values);

// Throws a Python exception of the right prpc class for a failed setup step.
[[noreturn]] void raise_status(const Status& status);

}  // namespace prpc::python

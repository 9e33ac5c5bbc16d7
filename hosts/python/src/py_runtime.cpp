#include "py_runtime.hpp"

#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>

namespace prpc::python {
namespace {

std::mutex g_mutex;
std::vector<std::string> g_dirs;
std::unique_ptr<PluginRegistry> g_registry;

}  // namespace

void set_plugin_dirs(const std::vector<std::string>& dirs) {
  std::lock_guard lock(g_mutex);
  g_dirs = dirs;
  if (g_registry) {
    for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) g_registry->add_search_dir(*it, true);
  }
}

PluginRegistry& registry() {
  std::lock_guard lock(g_mutex);
  if (!g_registry) {
    std::vector<std::filesystem::path> path = PluginRegistry::default_search_path();
    // PRPC_PLUGIN_PATH (first in the defaults) wins over the package's own plugins.
    std::size_t env_dirs = 0;
    if (const char* env = std::getenv("PRPC_PLUGIN_PATH"); env != nullptr && *env != '\0') {
      env_dirs = std::count(env, env + std::strlen(env), ':') + 1;
    }
    path.insert(path.begin() + static_cast<std::ptrdiff_t>(std::min(env_dirs, path.size())),
                g_dirs.begin(), g_dirs.end());
    g_registry = std::make_unique<PluginRegistry>(std::move(path));
  }
  return *g_registry;
}

Config make_config(const std::map<std::string, std::string>& values) {
  Config config;
  config.apply_environment();
  for (const auto& [k, v] : values) config.set(k, v);
  return config;
}

void raise_status(const Status& status) {
  // The table from codes to exceptions is the package's (prpc.exceptions.STATUS_EXCEPTIONS).
  pybind11::module_ exceptions = pybind11::module_::import("prpc.exceptions");
  pybind11::object type =
      exceptions.attr("exception_for")(std::string(status_code_name(status.code())));
  PyErr_SetString(type.ptr(), status.message().c_str());
  throw pybind11::error_already_set();
}

}  // namespace prpc::python

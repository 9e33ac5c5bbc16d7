// Loads plugin shared libraries (Boost.DLL), checks their ABI, registers their factories by kind
// and name, and makes broker/codec/executor/function-table instances from them. Every refusal is
// one line of text in a Status; the host keeps running.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "prpc/broker.hpp"
#include "prpc/codec.hpp"
#include "prpc/executor.hpp"
#include "prpc/functions.hpp"
#include "prpc/status.hpp"

namespace prpc {

enum class PluginKind : std::int32_t { kBroker = 1, kCodec = 2, kExecutor = 3, kFunctions = 4 };

std::string_view plugin_kind_name(PluginKind kind) noexcept;
std::optional<PluginKind> plugin_kind_from_name(std::string_view name) noexcept;

struct OptionInfo {
  std::string key;
  std::int32_t type = 0;  // PRPC_OPT_*
  std::optional<std::string> default_value;
  std::string help;
  bool required = false;
  bool secret = false;
};

struct FactoryInfo {
  PluginKind kind = PluginKind::kBroker;
  std::string name;
  std::string description;
  std::vector<OptionInfo> options;
  bool open_options = false;  // keys beyond `options` are passed through
};

struct PluginInfo {
  std::string name;
  std::string version;
  std::string description;
  std::filesystem::path path;
  std::uint16_t abi_major = 0;
  std::uint16_t abi_minor = 0;
  std::vector<FactoryInfo> factories;
};

// The option values an instance is created with: given values checked against the factory's
// table, defaults filled in, canonical text per type. Unknown keys are refused unless the factory
// accepts open options.
using OptionValues = std::map<std::string, std::string>;
Result<OptionValues> resolve_options(const FactoryInfo& factory, const OptionValues& given);

class PluginRegistry {
 public:
  // `search_path` is tried in order when a plugin is looked up by name.
  explicit PluginRegistry(std::vector<std::filesystem::path> search_path = default_search_path());
  ~PluginRegistry();
  PluginRegistry(const PluginRegistry&) = delete;
  PluginRegistry& operator=(const PluginRegistry&) = delete;

  // PRPC_PLUGIN_PATH (':'-separated), then the install directory next to the running program
  // (<prefix>/lib/prpc/plugins), then the build tree's plugin directory.
  static std::vector<std::filesystem::path> default_search_path();

  const std::vector<std::filesystem::path>& search_path() const { return search_path_; }
  void add_search_dir(std::filesystem::path dir, bool front = true);

  // Loads one library and registers all its factories, or none: a wrong ABI, a missing entry
  // symbol, an unknown kind or a name already registered refuses the whole library.
  Status load(const std::filesystem::path& file);

  // Makes sure a factory of `kind` named `name` is registered, loading prpc_<kind>_<name>.so
  // from the search path, or else scanning the path's prpc_*.so files.
  Status ensure(PluginKind kind, std::string_view name);

  // Reads the description of every prpc_*.so on the search path without registering anything;
  // a file that cannot be read appears with its error.
  struct ScanEntry {
    std::filesystem::path path;
    std::optional<PluginInfo> info;
    Status error;
  };
  std::vector<ScanEntry> scan() const;

  std::vector<PluginInfo> loaded() const;
  const FactoryInfo* find(PluginKind kind, std::string_view name) const;

  Result<std::shared_ptr<Broker>> make_broker(std::string_view name, const OptionValues& options);
  Result<std::shared_ptr<Codec>> make_codec(std::string_view name, const OptionValues& options);
  // The executor keeps `invoker` alive for as long as it lives.
  Result<std::shared_ptr<Executor>> make_executor(std::string_view name,
                                                  const OptionValues& options,
                                                  std::shared_ptr<Invoker> invoker);
  Result<std::shared_ptr<FunctionTable>> make_functions(std::string_view name,
                                                        const OptionValues& options);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::vector<std::filesystem::path> search_path_;
};

}  // namespace prpc

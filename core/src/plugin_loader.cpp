#include "prpc/plugin_loader.hpp"

#include <dlfcn.h>

#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>
#include <cstdlib>
#include <mutex>
#include <set>
#include <system_error>

#include "plugin_objects.hpp"
#include "prpc/abi_views.hpp"
#include "prpc/config.hpp"
#include "prpc/log.hpp"

#ifndef PRPC_BUILD_PLUGIN_DIR
#define PRPC_BUILD_PLUGIN_DIR ""
#endif
#ifndef PRPC_INSTALL_PLUGIN_SUBDIR
#define PRPC_INSTALL_PLUGIN_SUBDIR "lib/prpc/plugins"
#endif

namespace prpc {
namespace fs = std::filesystem;

namespace {

// One loaded library and the factories it declared. Objects made from it hold a shared_ptr.
struct Library {
  boost::dll::shared_library dll;
  PluginInfo info;
  std::vector<prpc_factory> factories;  // sized copies, parallel to info.factories
};
using LibraryPtr = std::shared_ptr<Library>;

std::string abi_text(std::uint16_t major, std::uint16_t minor) {
  return std::to_string(major) + "." + std::to_string(minor);
}

// Boost.DLL's message wraps dlerror's; keep only dlerror's, which names the real cause.
std::string load_error_text(const std::exception& e) {
  std::string what = e.what();
  const std::string marker = "(dlerror system message: ";
  std::size_t at = what.find(marker);
  if (at == std::string::npos) return what;
  std::size_t begin = at + marker.size();
  std::size_t end = what.rfind(')');
  if (end == std::string::npos || end <= begin) return what.substr(begin);
  return what.substr(begin, end - begin);
}

std::string cstr(const char* s) { return s != nullptr ? std::string(s) : std::string(); }

// Loads the library, pins it in memory and asks its entry point for the plugin's description.
Result<const prpc_plugin*> call_entry(Library& lib, const fs::path& path) {
  std::string where = path.string();
  try {
    lib.dll.load(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    return Status(StatusCode::kNotFound, "cannot load " + where + ": " + load_error_text(e));
  }
  // Never unmapped: a thread abandoned by a call timeout may still be running inside a plugin's
  // code when every object made by the plugin is gone. (RTLD_NOLOAD only upgrades the flags of
  // the mapping Boost.DLL just made.)
  if (void* pinned = dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE)) {
    dlclose(pinned);
  }
  if (!lib.dll.has(PRPC_PLUGIN_ENTRY_SYMBOL)) {
    return Status(
        StatusCode::kFailedPrecondition,
        where + " is not a PRPC plugin: it exports no " PRPC_PLUGIN_ENTRY_SYMBOL " symbol");
  }
  auto& entry =
      lib.dll.get<const prpc_plugin*(std::uint16_t, std::uint16_t)>(PRPC_PLUGIN_ENTRY_SYMBOL);
  const prpc_plugin* raw = nullptr;
  try {
    raw = entry(PRPC_ABI_MAJOR, PRPC_ABI_MINOR);
  } catch (...) {
    return Status(StatusCode::kInternal, where + ": " PRPC_PLUGIN_ENTRY_SYMBOL " threw");
  }
  if (raw == nullptr) {
    return Status(StatusCode::kFailedPrecondition,
                  where + ": the plugin declined this host (plugin ABI " +
                      abi_text(PRPC_ABI_MAJOR, PRPC_ABI_MINOR) + ")");
  }
  return raw;
}

// The checks of the description as a whole: ABI version, name, factory table.
Status check_plugin(const prpc_plugin& desc, const PluginInfo& info, const std::string& where,
                    const std::string& label) {
  if (desc.abi_major != PRPC_ABI_MAJOR) {
    return Status(StatusCode::kFailedPrecondition,
                  label + " was built for plugin ABI " + abi_text(desc.abi_major, desc.abi_minor) +
                      "; this host speaks " + abi_text(PRPC_ABI_MAJOR, PRPC_ABI_MINOR) +
                      " and major versions must match");
  }
  if (desc.abi_minor > PRPC_ABI_MINOR) {
    return Status(StatusCode::kFailedPrecondition,
                  label + " needs plugin ABI " + abi_text(desc.abi_major, desc.abi_minor) +
                      ", newer than this host's " + abi_text(PRPC_ABI_MAJOR, PRPC_ABI_MINOR));
  }
  if (info.name.empty()) {
    return Status(StatusCode::kFailedPrecondition, where + ": the plugin has no name");
  }
  if (desc.factory_count > 0 && desc.factories == nullptr) {
    return Status(StatusCode::kFailedPrecondition, label + " lists factories but gives none");
  }
  return Status::ok();
}

OptionInfo read_option(const prpc_option_spec& s) {
  OptionInfo o;
  o.key = cstr(s.key);
  o.type = s.type;
  if (s.default_value != nullptr) o.default_value = std::string(s.default_value);
  o.help = cstr(s.help);
  o.required = (s.flags & PRPC_OPT_FLAG_REQUIRED) != 0;
  o.secret = (s.flags & PRPC_OPT_FLAG_SECRET) != 0;
  return o;
}

// One factory of the description, checked, with its option table.
Result<FactoryInfo> read_factory(const prpc_factory& f, const std::string& label) {
  FactoryInfo fi;
  fi.name = cstr(f.name);
  fi.description = cstr(f.description);
  fi.open_options = (f.flags & PRPC_FACTORY_OPEN_OPTIONS) != 0;
  if (f.kind < PRPC_KIND_BROKER || f.kind > PRPC_KIND_FUNCTIONS) {
    return Status(StatusCode::kFailedPrecondition,
                  label + ": factory '" + fi.name + "' has unknown kind " + std::to_string(f.kind));
  }
  fi.kind = static_cast<PluginKind>(f.kind);
  if (fi.name.empty()) {
    return Status(StatusCode::kFailedPrecondition, label + ": a factory has no name");
  }
  if (f.vtable == nullptr) {
    return Status(StatusCode::kFailedPrecondition,
                  label + ": factory '" + fi.name + "' has no vtable");
  }
  for (std::size_t k = 0; k < f.option_count; ++k) {
    if (f.options == nullptr || f.options[k] == nullptr) continue;
    fi.options.push_back(read_option(abi::copy_sized(f.options[k])));
  }
  return fi;
}

// Loads a library and reads its description; registers nothing.
Result<LibraryPtr> open_library(const fs::path& path) {
  auto lib = std::make_shared<Library>();
  std::string where = path.string();
  PRPC_ASSIGN_OR_RETURN(const prpc_plugin* raw, call_entry(*lib, path));
  prpc_plugin desc = abi::copy_sized(raw);
  PluginInfo& info = lib->info;
  info.path = path;
  info.name = cstr(desc.name);
  info.version = cstr(desc.version);
  info.description = cstr(desc.description);
  info.abi_major = desc.abi_major;
  info.abi_minor = desc.abi_minor;
  std::string label = "plugin '" + info.name + "' (" + where + ")";
  PRPC_RETURN_IF_ERROR(check_plugin(desc, info, where, label));
  for (std::size_t i = 0; i < desc.factory_count; ++i) {
    prpc_factory f = abi::copy_sized(desc.factories[i]);
    PRPC_ASSIGN_OR_RETURN(FactoryInfo fi, read_factory(f, label));
    for (const FactoryInfo& other : info.factories) {
      if (other.kind == fi.kind && other.name == fi.name) {
        return Status(StatusCode::kAlreadyExists, label + " declares " +
                                                      std::string(plugin_kind_name(fi.kind)) +
                                                      " '" + fi.name + "' twice");
      }
    }
    info.factories.push_back(std::move(fi));
    lib->factories.push_back(f);
  }
  return lib;
}

Result<std::string> canonical_option(const OptionInfo& o, std::string_view value) {
  switch (o.type) {
    case PRPC_OPT_INT: {
      auto r = parse_int(value);
      if (!r.is_ok()) return r.status();
      return std::to_string(*r);
    }
    case PRPC_OPT_BOOL: {
      auto r = parse_bool(value);
      if (!r.is_ok()) return r.status();
      return std::string(*r ? "true" : "false");
    }
    case PRPC_OPT_DOUBLE: {
      auto r = parse_double(value);
      if (!r.is_ok()) return r.status();
      return std::string(value);
    }
    case PRPC_OPT_DURATION_MS: {
      auto r = parse_duration(value);
      if (!r.is_ok()) return r.status();
      return std::to_string(r->count());
    }
    default: return std::string(value);
  }
}

}  // namespace

std::string_view plugin_kind_name(PluginKind kind) noexcept {
  switch (kind) {
    case PluginKind::kBroker: return "broker";
    case PluginKind::kCodec: return "codec";
    case PluginKind::kExecutor: return "executor";
    case PluginKind::kFunctions: return "functions";
  }
  return "unknown";
}

std::optional<PluginKind> plugin_kind_from_name(std::string_view name) noexcept {
  for (PluginKind k :
       {PluginKind::kBroker, PluginKind::kCodec, PluginKind::kExecutor, PluginKind::kFunctions}) {
    if (plugin_kind_name(k) == name) return k;
  }
  return std::nullopt;
}

Result<OptionValues> resolve_options(const FactoryInfo& factory, const OptionValues& given) {
  OptionValues out;
  std::string label = std::string(plugin_kind_name(factory.kind)) + " '" + factory.name + "'";
  for (const OptionInfo& o : factory.options) {
    auto it = given.find(o.key);
    if (it == given.end()) {
      if (o.default_value) {
        out[o.key] = *o.default_value;
      } else if (o.required) {
        return Status(StatusCode::kInvalidArgument,
                      label + ": option '" + o.key + "' is required (" + o.help + ")");
      }
      continue;
    }
    auto v = canonical_option(o, it->second);
    if (!v.is_ok()) {
      return Status(StatusCode::kInvalidArgument,
                    label + ": option '" + o.key + "': " + v.status().message());
    }
    out[o.key] = std::move(*v);
  }
  for (const auto& [key, value] : given) {
    bool known = false;
    for (const OptionInfo& o : factory.options) known = known || o.key == key;
    if (known) continue;
    if (!factory.open_options) {
      std::string names;
      for (const OptionInfo& o : factory.options) {
        if (!names.empty()) names += ", ";
        names += o.key;
      }
      std::string message = label;
      message += ": unknown option '" + key + "' (known: ";
      message += names.empty() ? std::string("none") : names;
      message += ")";
      return Status(StatusCode::kInvalidArgument, std::move(message));
    }
    out[key] = value;
  }
  return out;
}

struct PluginRegistry::Impl {
  struct Registered {
    LibraryPtr lib;
    std::size_t index;  // into lib->factories / lib->info.factories
  };
  mutable std::mutex mutex;
  std::vector<LibraryPtr> libraries;
  std::set<fs::path> loaded_paths;
  std::map<std::pair<PluginKind, std::string>, Registered, std::less<>> factories;

  Status add(const LibraryPtr& lib) {
    for (const FactoryInfo& f : lib->info.factories) {
      auto it = factories.find(std::make_pair(f.kind, f.name));
      if (it != factories.end()) {
        const PluginInfo& owner = it->second.lib->info;
        return Status(StatusCode::kAlreadyExists,
                      "plugin '" + lib->info.name + "' (" + lib->info.path.string() +
                          "): " + std::string(plugin_kind_name(f.kind)) + " '" + f.name +
                          "' is already provided by plugin '" + owner.name + "' (" +
                          owner.path.string() + ")");
      }
    }
    for (std::size_t i = 0; i < lib->info.factories.size(); ++i) {
      const FactoryInfo& f = lib->info.factories[i];
      factories.emplace(std::make_pair(f.kind, f.name), Registered{lib, i});
    }
    libraries.push_back(lib);
    loaded_paths.insert(lib->info.path);
    return Status::ok();
  }

  Result<std::pair<LibraryPtr, prpc_factory>> lookup(PluginKind kind, std::string_view name) {
    std::lock_guard lock(mutex);
    auto it = factories.find(std::make_pair(kind, std::string(name)));
    if (it == factories.end()) {
      return Status(StatusCode::kNotFound, "no " + std::string(plugin_kind_name(kind)) +
                                               " plugin named '" + std::string(name) +
                                               "' is loaded");
    }
    return std::make_pair(it->second.lib, it->second.lib->factories[it->second.index]);
  }
};

namespace {

// The C view of resolved options; the strings live in `values`.
struct ConfigView {
  std::vector<prpc_option> items;
  prpc_config config = abi::make_sized<prpc_config>();
  explicit ConfigView(const OptionValues& values) {
    items.reserve(values.size());
    for (const auto& [k, v] : values) items.push_back(prpc_option{abi::str(k), abi::str(v)});
    config.items = items.data();
    config.count = items.size();
  }
};

// Resolves the options of a registered factory and hands the C view to `make`.
template <typename Vtable, typename Make>
auto make_from(PluginRegistry& registry, PluginKind kind, std::string_view name,
               const OptionValues& given, const LibraryPtr& lib, const prpc_factory& factory,
               Make&& make) -> decltype(make(lib, nullptr, nullptr)) {
  const FactoryInfo* info = registry.find(kind, name);
  auto resolved = resolve_options(*info, given);
  if (!resolved.is_ok()) return resolved.status();
  ConfigView view(*resolved);
  auto r = make(lib, static_cast<const Vtable*>(factory.vtable), &view.config);
  if (!r.is_ok()) {
    return r.status().with_context(std::string(plugin_kind_name(kind)) + " '" + std::string(name) +
                                   "'");
  }
  return r;
}

}  // namespace

PluginRegistry::PluginRegistry(std::vector<fs::path> search_path)
    : impl_(std::make_unique<Impl>()), search_path_(std::move(search_path)) {}

PluginRegistry::~PluginRegistry() = default;

std::vector<fs::path> PluginRegistry::default_search_path() {
  std::vector<fs::path> out;
  if (const char* env = std::getenv("PRPC_PLUGIN_PATH"); env != nullptr) {
    std::string_view text(env);
    std::size_t start = 0;
    while (start <= text.size()) {
      std::size_t colon = text.find(':', start);
      std::string_view item = text.substr(start, colon - start);
      if (!item.empty()) out.emplace_back(item);
      if (colon == std::string_view::npos) break;
      start = colon + 1;
    }
  }
  std::error_code ec;
  fs::path exe = boost::dll::program_location(ec);
  if (!ec) out.push_back(exe.parent_path().parent_path() / PRPC_INSTALL_PLUGIN_SUBDIR);
  if (!std::string_view(PRPC_BUILD_PLUGIN_DIR).empty()) out.emplace_back(PRPC_BUILD_PLUGIN_DIR);
  // A program run from the build tree finds the same directory twice.
  std::vector<fs::path> unique;
  std::set<fs::path> seen;
  for (const fs::path& dir : out) {
    std::error_code canon_ec;
    fs::path key = fs::weakly_canonical(dir, canon_ec);
    if (seen.insert(canon_ec ? dir : key).second) unique.push_back(dir);
  }
  return unique;
}

void PluginRegistry::add_search_dir(fs::path dir, bool front) {
  std::lock_guard lock(impl_->mutex);
  if (front) {
    search_path_.insert(search_path_.begin(), std::move(dir));
  } else {
    search_path_.push_back(std::move(dir));
  }
}

Status PluginRegistry::load(const fs::path& file) {
  std::error_code ec;
  fs::path path = fs::weakly_canonical(fs::absolute(file, ec), ec);
  if (ec) path = file;
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->loaded_paths.count(path) != 0) return Status::ok();
  }
  auto lib = open_library(path);
  if (!lib.is_ok()) return lib.status();
  std::lock_guard lock(impl_->mutex);
  if (impl_->loaded_paths.count(path) != 0) return Status::ok();
  PRPC_RETURN_IF_ERROR(impl_->add(*lib));
  const PluginInfo& info = (*lib)->info;
  log::debug("plugins",
             "loaded plugin '" + info.name + "' " + info.version + " from " + path.string());
  return Status::ok();
}

Status PluginRegistry::ensure(PluginKind kind, std::string_view name) {
  if (find(kind, name) != nullptr) return Status::ok();
  std::string file =
      "prpc_" + std::string(plugin_kind_name(kind)) + "_" + std::string(name) + ".so";
  std::vector<fs::path> dirs;
  {
    std::lock_guard lock(impl_->mutex);
    dirs = search_path_;
  }
  for (const fs::path& dir : dirs) {
    std::error_code ec;
    fs::path candidate = dir / file;
    if (fs::is_regular_file(candidate, ec)) {
      PRPC_RETURN_IF_ERROR(load(candidate));
      if (find(kind, name) != nullptr) return Status::ok();
    }
  }
  // Not found by its conventional file name: look inside every plugin on the path.
  for (const ScanEntry& entry : scan()) {
    if (!entry.info) continue;
    for (const FactoryInfo& f : entry.info->factories) {
      if (f.kind == kind && f.name == name) return load(entry.path);
    }
  }
  std::string where;
  for (const fs::path& dir : dirs) where += (where.empty() ? "" : ", ") + dir.string();
  return Status(StatusCode::kNotFound,
                "no " + std::string(plugin_kind_name(kind)) + " plugin named '" +
                    std::string(name) + "' (looked for " + file +
                    " in: " + (where.empty() ? std::string("nowhere") : where) + ")");
}

std::vector<PluginRegistry::ScanEntry> PluginRegistry::scan() const {
  std::vector<ScanEntry> out;
  std::vector<fs::path> dirs;
  {
    std::lock_guard lock(impl_->mutex);
    dirs = search_path_;
  }
  std::set<fs::path> seen;
  for (const fs::path& dir : dirs) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      std::string fname = entry.path().filename().string();
      if (fname.rfind("prpc_", 0) == 0 && entry.path().extension() == ".so") {
        files.push_back(entry.path());
      }
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& f : files) {
      fs::path canon = fs::weakly_canonical(f, ec);
      if (!seen.insert(canon).second) continue;
      ScanEntry e;
      e.path = canon;
      auto lib = open_library(canon);
      if (lib.is_ok()) {
        e.info = (*lib)->info;
      } else {
        e.error = lib.status();
      }
      out.push_back(std::move(e));
    }
  }
  return out;
}

std::vector<PluginInfo> PluginRegistry::loaded() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<PluginInfo> out;
  for (const LibraryPtr& lib : impl_->libraries) out.push_back(lib->info);
  return out;
}

const FactoryInfo* PluginRegistry::find(PluginKind kind, std::string_view name) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->factories.find(std::make_pair(kind, std::string(name)));
  if (it == impl_->factories.end()) return nullptr;
  return &it->second.lib->info.factories[it->second.index];
}

Result<std::shared_ptr<Broker>> PluginRegistry::make_broker(std::string_view name,
                                                            const OptionValues& options) {
  PRPC_RETURN_IF_ERROR(ensure(PluginKind::kBroker, name));
  PRPC_ASSIGN_OR_RETURN(auto found, impl_->lookup(PluginKind::kBroker, name));
  return make_from<prpc_broker_vtable>(*this, PluginKind::kBroker, name, options, found.first,
                                       found.second, &details::make_plugin_broker);
}

Result<std::shared_ptr<Codec>> PluginRegistry::make_codec(std::string_view name,
                                                          const OptionValues& options) {
  PRPC_RETURN_IF_ERROR(ensure(PluginKind::kCodec, name));
  PRPC_ASSIGN_OR_RETURN(auto found, impl_->lookup(PluginKind::kCodec, name));
  return make_from<prpc_codec_vtable>(*this, PluginKind::kCodec, name, options, found.first,
                                      found.second, &details::make_plugin_codec);
}

Result<std::shared_ptr<Executor>> PluginRegistry::make_executor(std::string_view name,
                                                                const OptionValues& options,
                                                                std::shared_ptr<Invoker> invoker) {
  PRPC_RETURN_IF_ERROR(ensure(PluginKind::kExecutor, name));
  PRPC_ASSIGN_OR_RETURN(auto found, impl_->lookup(PluginKind::kExecutor, name));
  return make_from<prpc_executor_vtable>(
      *this, PluginKind::kExecutor, name, options, found.first, found.second,
      [&invoker](const details::LibraryHandle& lib, const prpc_executor_vtable* vt,
                 const prpc_config* config) {
        return details::make_plugin_executor(lib, vt, config, std::move(invoker));
      });
}

Result<std::shared_ptr<FunctionTable>> PluginRegistry::make_functions(std::string_view name,
                                                                      const OptionValues& options) {
  PRPC_RETURN_IF_ERROR(ensure(PluginKind::kFunctions, name));
  PRPC_ASSIGN_OR_RETURN(auto found, impl_->lookup(PluginKind::kFunctions, name));
  return make_from<prpc_functions_vtable>(*this, PluginKind::kFunctions, name, options, found.first,
                                          found.second, &details::make_plugin_functions);
}

}  // namespace prpc

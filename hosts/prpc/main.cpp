// prpc: the command-line client, for operators and shell scripts. It speaks the raw JSON
// protocol, so it calls any PRPC server without Python.
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "dashboard.hpp"
#include "host_common.hpp"
#include "prpc/client.hpp"
#include "prpc/json.hpp"
#include "prpc/log.hpp"
#include "prpc/plugin_loader.hpp"
#include "prpc/runtime.hpp"
#include "prpc/server.hpp"
#include "prpc/version.h"

namespace {

using namespace prpc;
using namespace prpc::host;

constexpr std::string_view kProgram = "prpc";

constexpr const char* kUsage =
    R"(usage: prpc [OPTIONS] call FUNC [ARGS_JSON] [--kwargs JSON] [--timeout SECONDS] [-v]
       prpc [OPTIONS] funcs
       prpc [OPTIONS] stats [--servers]
       prpc [OPTIONS] dead-letters [--limit N]
       prpc [OPTIONS] dead-letters --requeue [--id ID ...]
       prpc [OPTIONS] gen-stubs [--output FILE] [--timeout SECONDS]
       prpc [OPTIONS] serve MODULE:ATTR [--check] [--log-level LEVEL]
       prpc [OPTIONS] dashboard [--listen HOST:PORT] [--token TOKEN] [--allow-actions]

Talks to the server of one queue through the broker named by PRPC_TYPE_BROKER, PRPC_URL_BROKER
and PRPC_QUEUE_NAME (or a configuration file), with the raw JSON protocol.

  call FUNC [ARGS]   call FUNC with ARGS, a JSON array (default []); prints the result as JSON
    -v, --verbose    also print where the time went on stderr: the server that answered, the
                     time queued, the time executing and the round trip
  funcs              list the server's functions with their signatures
  stats              queue length, pending requests, consumers and dead letters
    --servers        also every server the broker knows for the queue (alive or stopped): id,
                     version, uptime, workers, in-flight calls and each function's numbers
  dead-letters       the requests that were dead-lettered, with the reason
    --requeue        put them back into the request queue (only those named by --id ID,
                     which may repeat) so servers run them again; prints what it requeued
  gen-stubs          write server_func.py with the server's functions, like
                     `python -m prpc.create_server_func` (it runs that module)
    --output FILE    where to write (default ./server_func.py)
  serve MODULE:ATTR  serve the prpc.AppServer ATTR of the Python module MODULE (importable from
                     the current directory) until SIGINT or SIGTERM: it runs
                     `prpc-host --app MODULE:ATTR` with the same options, so exit codes are
                     prpc-host's; the queue and broker options override the AppServer's own
    --check          only import the application and list the functions it would serve
  dashboard          serve a live web page of the queues (--queue may repeat), their servers,
                     functions, rates, latency and dead letters until SIGINT or SIGTERM; prints
                     its address (docs/dashboard.md)
    --listen H:P     where (default 127.0.0.1:8787; port 0 picks a free one)
    --token TOKEN    every request needs it (default: $PRPC_DASHBOARD_TOKEN); enables the
                     call form and the requeue button
    --allow-actions  enable them without a token

options:
  --config FILE      TOML configuration (default: $PRPC_CONFIG)
  --set KEY=VALUE    override one configuration key
  --queue NAME       the queue (same as --set queue.name=NAME)
  --json             print machine-readable JSON
  --timeout SECONDS  how long call and funcs wait for the reply (default 30; gen-stubs 10)

Colour and the "waiting for a reply" line appear only on a terminal, never with --json or
when NO_COLOR is set.

Exit codes: 0 ok, 1 the call failed remotely (or the broker refused the operation, or some
--id was not requeued), 2 usage, 3 configuration, 4 plugin, 5 broker unreachable, 6 no reply
in time, 7 gen-stubs cannot run Python or import the prpc package; serve exits with
prpc-host's codes.
)";

// gen-stubs: no python3, or it cannot import the prpc package.
constexpr int kExitNoPython = 7;

struct Args {
  std::string config;
  std::vector<std::string> sets;
  std::string command;
  std::vector<std::string> positional;
  std::string kwargs = "{}";
  double timeout_s = 30;
  bool json = false;
  bool timeout_given = false;
  std::size_t limit = 100;
  bool requeue = false;
  std::vector<std::string> ids;
  std::string output;
  bool check = false;
  bool verbose = false;
  bool servers = false;
  std::string log_level;
  std::vector<std::string> queues;  // every --queue, for dashboard
  dashboard::Options dashboard;
  bool dashboard_flags = false;
};

// ---- terminal --------------------------------------------------------------------------------

// Escape codes only for a person at a terminal: never in a pipe, a file or --json, and not when
// NO_COLOR is set to anything non-empty (https://no-color.org).
bool colour_on(int fd, const Args& args) {
  const char* no_colour = std::getenv("NO_COLOR");
  if (args.json || (no_colour != nullptr && *no_colour != '\0')) return false;
  if (::isatty(fd) == 0) return false;
  const char* term = std::getenv("TERM");
  return term == nullptr || std::string_view(term) != "dumb";
}

struct Style {
  bool on = false;
  std::string bold(std::string_view s) const { return wrap("\033[1m", s); }
  std::string red(std::string_view s) const { return wrap("\033[31m", s); }
  std::string dim(std::string_view s) const { return wrap("\033[2m", s); }
  std::string wrap(const char* code, std::string_view s) const {
    if (!on) return std::string(s);
    return std::string(code) + std::string(s) + "\033[0m";
  }
};

Style g_out, g_err;  // stdout, stderr

// host_common's fail(), in red on a terminal.
int error(int code, std::string_view message) {
  if (!g_err.on) return fail(kProgram, code, message);
  std::string line;
  for (char c : message) line += (c == '\n' ? ' ' : c);
  std::cerr << g_err.red(std::string(kProgram) + ": error: " + line) << std::endl;
  return code;
}
int error(int code, const Status& status) { return error(code, status.message()); }

// "waiting for a reply..." on stderr while a call takes longer than a moment, on a terminal only.
// It draws on one line and erases it when the call returns, so the result is printed as usual.
class Progress {
 public:
  Progress(bool enabled, std::string what) {
    if (!enabled) return;
    thread_ = std::thread([this, what = std::move(what)] { run(what); });
  }
  ~Progress() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

 private:
  void run(const std::string& what) {
    using namespace std::chrono_literals;
    static constexpr const char* kFrames[] = {"|", "/", "-", "\\"};
    auto start = std::chrono::steady_clock::now();
    std::unique_lock lock(mutex_);
    if (cv_.wait_for(lock, 700ms, [this] { return done_; })) return;  // quick calls stay quiet
    bool drawn = false;
    for (unsigned frame = 0; !done_; ++frame) {
      auto s = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() -
                                                                start);
      std::string line = "\r" + std::string(kFrames[frame % 4]) + " " + what + " (" +
                         std::to_string(s.count()) + "s)\033[K";
      std::fputs(line.c_str(), stderr);
      std::fflush(stderr);
      drawn = true;
      cv_.wait_for(lock, 120ms, [this] { return done_; });
    }
    if (drawn) {
      std::fputs("\r\033[K", stderr);
      std::fflush(stderr);
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

struct Session {
  Config config;
  PluginRegistry registry;
  std::shared_ptr<Broker> broker;
  std::string queue;
};

int open_session(const Args& args, Session& s) {
  auto config = load_config(args.config, args.sets);
  if (!config.is_ok()) return error(kExitConfig, config.status());
  s.config = std::move(*config);
  auto level = log::parse_level(s.config.get_or("log.level", "warn"));
  log::set_level(level.value_or(log::Level::kWarn));
  if (Status st = configure_plugins(s.registry, s.config); !st.is_ok()) {
    return error(kExitPlugin, st);
  }
  auto broker = make_configured_broker(s.registry, s.config);
  if (!broker.is_ok()) return error(setup_exit_code(broker.status()), broker.status());
  s.broker = std::move(*broker);
  if (Status st = s.broker->connect(); !st.is_ok()) {
    return error(setup_exit_code(st), st);
  }
  s.queue = s.config.get_or("queue.name", "task_prpc");
  return kExitOk;
}

// Sends one raw call and waits for its reply.
int call(Session& s, const Args& args, const std::string& func, const std::string& func_args,
         Message& reply, double* round_trip_s = nullptr) {
  std::string codec_name = s.config.get_or("codec.raw", "rawjson");
  auto codec =
      s.registry.make_codec(codec_name, options_under(s.config, "codec.options." + codec_name));
  if (!codec.is_ok()) return error(setup_exit_code(codec.status()), codec.status());
  auto options = configured_client_options(s.config, Flavour::kRaw);  // signing keys too
  if (!options.is_ok()) return error(kExitConfig, options.status());
  options->queue = s.queue;
  Client client(std::move(*options), s.broker, *codec);
  Message request;
  request.func_name = func;
  request.func_args = func_args;
  request.func_kwargs = args.kwargs;
  auto timeout = std::chrono::milliseconds(static_cast<std::int64_t>(args.timeout_s * 1000));
  Result<Message> r = Status(StatusCode::kInternal, "not called");
  auto sent = std::chrono::steady_clock::now();
  {
    Progress progress(g_err.on, "waiting for a reply from queue '" + s.queue + "'");
    r = client.call_sync(std::move(request), timeout);
  }
  if (round_trip_s != nullptr) {
    *round_trip_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count();
  }
  if (!r.is_ok()) {
    int code = r.status().code() == StatusCode::kTimeout       ? kExitTimeout
               : r.status().code() == StatusCode::kUnavailable ? kExitUnreachable
                                                               : kExitFailure;
    return error(code, r.status().message() + " (queue '" + s.queue + "')");
  }
  reply = std::move(*r);
  return kExitOk;
}

// The reply's latency breakdown (docs/protocol.md), one line on stderr.
void print_breakdown(const Message& reply, double round_trip_s) {
  auto millis = [](double s) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.3f ms", s * 1000);
    return std::string(buf);
  };
  auto seconds = [&](std::string_view key) -> std::string {
    auto text = json::get_member(reply.extensions, key);
    if (!text) return "-";
    char* end = nullptr;
    std::string value(*text);
    double v = std::strtod(value.c_str(), &end);
    return end != value.c_str() ? millis(v) : "-";
  };
  std::string server = json::get_string_member(reply.extensions, "server").value_or("-");
  std::cerr << g_err.dim("server " + server + "  queued " + seconds("time_queued") +
                         "  executing " + seconds("time_executing") + "  round trip " +
                         millis(round_trip_s))
            << "\n";
}

int command_call(Session& s, const Args& args) {
  if (args.positional.empty() || args.positional.size() > 2) {
    return error(kExitUsage, "call needs FUNC and optionally ARGS_JSON");
  }
  std::string func_args = args.positional.size() == 2 ? args.positional[1] : "[]";
  for (const auto& [what, text, type] :
       {std::tuple{"ARGS_JSON", func_args, json::Type::kArray},
        std::tuple{"--kwargs", args.kwargs, json::Type::kObject}}) {
    Status valid = json::validate(text, {});
    if (!valid.is_ok()) return error(kExitUsage, std::string(what) + ": " + valid.message());
    if (json::peek_type(text) != type) {
      return error(kExitUsage,
                   std::string(what) + " must be a JSON " + std::string(json::type_name(type)));
    }
  }
  Message reply;
  double round_trip = 0;
  if (int code = call(s, args, args.positional[0], func_args, reply, &round_trip);
      code != kExitOk) {
    return code;
  }
  if (args.verbose) print_breakdown(reply, round_trip);
  if (args.json) {
    std::string codec_name = s.config.get_or("codec.raw", "rawjson");
    auto codec = s.registry.make_codec(codec_name, {});
    auto text = codec.is_ok() ? (*codec)->encode(reply) : Result<std::string>(codec.status());
    std::cout << (text.is_ok() ? *text : reply.result) << "\n";
  } else if (!reply.failed()) {
    std::cout << reply.result << "\n";
  }
  if (reply.failed()) {
    if (!args.json) std::cerr << *reply.exception_info << "\n";
    if (!args.json && !reply.traceback.empty()) std::cerr << reply.traceback << "\n";
    return kExitFailure;
  }
  return kExitOk;
}

// The signature of a manifest entry's spec, as the engine writes it.
std::string signature(const rapidjson::Value& spec) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  spec.Accept(writer);
  return function_signature(std::string_view(buffer.GetString(), buffer.GetSize()));
}

int command_funcs(Session& s, Args args) {
  Message reply;
  args.kwargs = R"({"format": "manifest"})";
  if (int code = call(s, args, "get_function_server", "[]", reply); code != kExitOk) return code;
  if (reply.failed()) return error(kExitFailure, *reply.exception_info);
  if (args.json) {
    std::cout << reply.result << "\n";
    return kExitOk;
  }
  rapidjson::Document d;
  d.Parse(reply.result.c_str(), reply.result.size());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("functions") ||
      !d["functions"].IsArray()) {
    return error(kExitFailure, "the server's manifest is not understood");
  }
  for (const auto& f : d["functions"].GetArray()) {
    if (!f.IsObject() || !f.HasMember("name") || !f["name"].IsString()) continue;
    std::cout << g_out.bold(f["name"].GetString())
              << (f.HasMember("spec") ? signature(f["spec"]) : std::string("(...)"));
    if (f.HasMember("worker") && f["worker"].IsString()) {
      std::cout << "  [" << f["worker"].GetString() << "]";
    }
    if (f.HasMember("doc") && f["doc"].IsString() && f["doc"].GetStringLength() > 0) {
      std::string doc = f["doc"].GetString();
      std::cout << "\n    " << g_out.dim(doc.substr(0, doc.find('\n')));
    }
    std::cout << "\n";
  }
  return kExitOk;
}

// "1.5 ms", "12 s", "3 min": a duration for a person.
std::string human_duration(double seconds) {
  char buf[32];
  if (seconds < 1) {
    std::snprintf(buf, sizeof(buf), "%.1f ms", seconds * 1e3);
  } else if (seconds < 120) {
    std::snprintf(buf, sizeof(buf), "%.1f s", seconds);
  } else if (seconds < 7200) {
    std::snprintf(buf, sizeof(buf), "%.0f min", seconds / 60);
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f h", seconds / 3600);
  }
  return buf;
}

double number_of(const rapidjson::Value& o, const char* key) {
  return o.IsObject() && o.HasMember(key) && o[key].IsNumber() ? o[key].GetDouble() : 0;
}

std::string string_of(const rapidjson::Value& o, const char* key) {
  return o.IsObject() && o.HasMember(key) && o[key].IsString() ? o[key].GetString() : "";
}

// The servers of list_servers() for a person: one block per server, a line per function.
int print_servers(const std::string& servers) {
  rapidjson::Document d;
  d.Parse(servers.c_str(), servers.size());
  if (d.HasParseError() || !d.IsArray()) return error(kExitFailure, "the server list is not JSON");
  if (d.Empty()) {
    std::cout << "no server has announced itself on this queue\n";
    return kExitOk;
  }
  for (const auto& entry : d.GetArray()) {
    if (!entry.IsObject() || !entry.HasMember("info")) continue;
    const rapidjson::Value& info = entry["info"];
    bool alive = entry.HasMember("alive") && entry["alive"].IsBool() && entry["alive"].GetBool();
    std::cout << g_out.bold(string_of(entry, "id")) << "  "
              << (alive ? std::string("alive") : g_out.red("stopped")) << ", last heard "
              << human_duration(number_of(entry, "age_ms") / 1e3) << " ago\n";
    std::cout << "  version " << string_of(info, "version") << ", pid "
              << static_cast<long long>(number_of(info, "pid")) << " on " << string_of(info, "host")
              << ", up " << human_duration(number_of(info, "uptime_s")) << ", "
              << static_cast<long long>(number_of(info, "in_flight")) << " in flight";
    if (info.HasMember("workers") && info["workers"].IsObject()) {
      std::cout << ", workers";
      for (const auto& w : info["workers"].GetObject()) {
        if (w.value.IsNumber()) {
          std::cout << " " << w.name.GetString() << "=" << w.value.GetInt64();
        }
      }
    }
    std::cout << "\n";
    if (!info.HasMember("functions") || !info["functions"].IsArray()) continue;
    for (const auto& f : info["functions"].GetArray()) {
      std::cout << "    " << string_of(f, "name") << string_of(f, "signature") << "  ["
                << string_of(f, "worker") << "]  " << static_cast<long long>(number_of(f, "calls"))
                << (number_of(f, "calls") == 1 ? " call, " : " calls, ")
                << static_cast<long long>(number_of(f, "errors"))
                << (number_of(f, "errors") == 1 ? " error" : " errors");
      if (number_of(f, "calls") > 0) {
        std::cout << ", p50 " << human_duration(number_of(f, "p50_ms") / 1e3) << ", p99 "
                  << human_duration(number_of(f, "p99_ms") / 1e3);
      }
      std::cout << "\n";
    }
  }
  return kExitOk;
}

int command_stats(Session& s, const Args& args) {
  auto st = s.broker->queue_stats(s.queue);
  if (!st.is_ok()) return error(kExitFailure, st.status());
  std::string servers;
  if (args.servers) {
    auto listed = s.broker->list_servers(s.queue);
    if (!listed.is_ok()) return error(kExitFailure, listed.status());
    servers = std::move(*listed);
  }
  if (args.json) {
    std::cout << "{\"queue\": " << json::quote(s.queue) << ", \"length\": " << st->length
              << ", \"pending\": " << st->pending << ", \"consumers\": " << st->consumers
              << ", \"dead_letters\": " << st->dead_letters;
    if (args.servers) std::cout << ", \"servers\": " << servers;
    std::cout << "}\n";
    return kExitOk;
  }
  std::cout << "queue " << s.queue << ": " << st->length << " waiting, " << st->pending
            << " pending, " << st->consumers << " consumers, " << st->dead_letters
            << " dead letters\n";
  return args.servers ? print_servers(servers) : kExitOk;
}

// Prints what it requeued. With ids, each goes on its own so the output says which ones came
// back; without, one call moves them all (the broker pages through them).
int command_requeue(Session& s, const Args& args) {
  std::vector<std::string> requeued, missing;
  std::size_t count = 0;
  if (args.ids.empty()) {
    auto r = s.broker->requeue_dead_letters(s.queue, {});
    if (!r.is_ok()) return error(kExitFailure, r.status());
    count = *r;
  } else {
    for (const std::string& id : args.ids) {
      std::span<const std::string> one(&id, 1);
      auto r = s.broker->requeue_dead_letters(s.queue, one);
      if (!r.is_ok()) {
        if (count == 0) return error(kExitFailure, r.status());
        return error(kExitFailure,
                     "requeued " + std::to_string(count) + ", then: " + r.status().message());
      }
      if (*r > 0) {
        requeued.push_back(id);
        count += *r;
      } else {
        missing.push_back(id);
      }
    }
  }
  if (args.json) {
    std::cout << "{\"queue\": " << json::quote(s.queue) << ", \"requeued\": " << count;
    if (!args.ids.empty()) {
      for (const auto& [name, list] :
           {std::pair{"ids", &requeued}, std::pair{"not_found", &missing}}) {
        std::cout << ", \"" << name << "\": [";
        for (std::size_t i = 0; i < list->size(); ++i) {
          std::cout << (i ? ", " : "") << json::quote((*list)[i]);
        }
        std::cout << "]";
      }
    }
    std::cout << "}\n";
  } else {
    for (const std::string& id : requeued) std::cout << "requeued " << g_out.bold(id) << "\n";
    std::cout << "requeued " << count << " dead letter" << (count == 1 ? "" : "s") << " of queue "
              << s.queue << "\n";
  }
  if (!missing.empty()) {
    std::string list;
    for (const std::string& id : missing) list += (list.empty() ? "" : ", ") + id;
    return error(kExitFailure,
                 "not requeued (no such dead letter, or its payload was truncated): " + list);
  }
  return kExitOk;
}

int command_dead_letters(Session& s, const Args& args) {
  if (args.requeue) return command_requeue(s, args);
  auto letters = s.broker->dead_letters(s.queue, args.limit);
  if (!letters.is_ok()) return error(kExitFailure, letters.status());
  if (args.json) std::cout << "[";
  bool first = true;
  for (const DeadLetter& d : *letters) {
    if (args.json) {
      std::cout << (first ? "" : ", ") << "{\"id\": " << json::quote(d.id)
                << ", \"flavour\": " << json::quote(flavour_name(d.flavour))
                << ", \"reason\": " << json::quote(d.reason)
                << ", \"payload\": " << json::quote(d.payload) << "}";
    } else {
      std::cout << g_out.bold(d.id) << " [" << flavour_name(d.flavour) << "] "
                << g_out.red(d.reason) << "\n    " << d.payload.substr(0, 200)
                << (d.payload.size() > 200 ? "..." : "") << "\n";
    }
    first = false;
  }
  if (args.json) std::cout << "]\n";
  return kExitOk;
}

// Where the prpc Python package of this build is: the build tree assembles it in
// <build>/python next to <build>/bin. An installed prpc is found by Python itself (pip install).
std::string build_tree_package_parent() {
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  std::filesystem::path parent = exe.parent_path().parent_path() / "python";
  if (!std::filesystem::exists(parent / "prpc" / "create_server_func.py", ec)) return {};
  return parent.string();
}

// Runs `python -m prpc.create_server_func` in place of this process, so its output, files and
// exit code are the module's own. The configuration (file, --set, environment) is handed over as
// the PRPC_* environment the module reads.
int command_gen_stubs(const Args& args) {
  if (!args.positional.empty()) return error(kExitUsage, "gen-stubs takes no arguments");
  auto config = load_config(args.config, args.sets);
  if (!config.is_ok()) return error(kExitConfig, config.status());
  // Every key, not only the broker and queue: broker.options (SASL, TLS) must reach the client.
  for (const auto& [key, value] : config->all()) {
    ::setenv(Config::env_name(key).c_str(), value.c_str(), 1);
  }
  if (std::string parent = build_tree_package_parent(); !parent.empty()) {
    const char* old = std::getenv("PYTHONPATH");
    std::string path = parent + (old != nullptr && *old != '\0' ? ":" + std::string(old) : "");
    ::setenv("PYTHONPATH", path.c_str(), 1);
  }
  // A missing package is reported in one line with its own exit code, rather than as Python's
  // traceback; otherwise this is exactly `python -m prpc.create_server_func` (same prog name).
  static constexpr const char* kBootstrap =
      "import sys\n"
      "try:\n"
      "    from prpc import create_server_func as m\n"
      "except ImportError as e:\n"
      "    sys.stderr.write('prpc: error: gen-stubs needs the prpc Python package (%s)\\n' % e)\n"
      "    sys.exit(7)\n"
      "sys.exit(m.main(sys.argv[1:]))\n";
  std::string python = "python3";
  if (const char* p = std::getenv("PRPC_PYTHON"); p != nullptr && *p != '\0') python = p;
  std::vector<std::string> argv_text{python, "-c", kBootstrap, "--queue",
                                     config->get_or("queue.name", "task_prpc")};
  if (!args.output.empty()) argv_text.insert(argv_text.end(), {"--output", args.output});
  if (args.timeout_given) {
    argv_text.insert(argv_text.end(), {"--timeout", std::to_string(args.timeout_s)});
  }
  std::vector<char*> argv;
  for (std::string& a : argv_text) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::cout.flush();
  ::execvp(argv[0], argv.data());
  return error(kExitNoPython,
               "gen-stubs runs " + python + ", which cannot be started: " + std::strerror(errno));
}

// Runs prpc-host (next to this program) in place of this process with --app, so serving a Python
// application is one command, like `celery worker` or `faststream run`.
int command_serve(const Args& args) {
  if (args.positional.size() != 1) return error(kExitUsage, "serve needs one MODULE:ATTR");
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  std::string host = ec ? std::string("prpc-host") : (exe.parent_path() / "prpc-host").string();
  std::vector<std::string> argv_text{host, "--app", args.positional.front()};
  if (!args.config.empty()) argv_text.insert(argv_text.end(), {"--config", args.config});
  for (const std::string& s : args.sets) argv_text.insert(argv_text.end(), {"--set", s});
  if (!args.log_level.empty()) argv_text.insert(argv_text.end(), {"--log-level", args.log_level});
  if (args.check) argv_text.emplace_back("--check");
  std::vector<char*> argv;
  for (std::string& a : argv_text) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::cout.flush();
  ::execv(argv[0], argv.data());
  return error(kExitPlugin,
               "serve runs " + host + ", which cannot be started: " + std::strerror(errno));
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](std::string& out) -> bool {
      if (i + 1 >= argc) return false;
      out = argv[++i];
      return true;
    };
    std::string v;
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return kExitOk;
    } else if (a == "--version") {
      std::cout << "prpc " PRPC_VERSION_STRING "\n";
      return kExitOk;
    } else if (a == "--config" || a == "-c") {
      if (!value(args.config)) return error(kExitUsage, "--config needs a file");
    } else if (a == "--set") {
      if (!value(v)) return error(kExitUsage, "--set needs KEY=VALUE");
      args.sets.push_back(v);
    } else if (a == "--queue") {
      if (!value(v)) return error(kExitUsage, "--queue needs a name");
      args.sets.push_back("queue.name=" + v);
      args.queues.push_back(v);
    } else if (a == "--kwargs") {
      if (!value(args.kwargs)) return error(kExitUsage, "--kwargs needs a JSON object");
    } else if (a == "--timeout") {
      if (!value(v)) return error(kExitUsage, "--timeout needs seconds");
      try {
        args.timeout_s = std::stod(v);
      } catch (...) {
        return error(kExitUsage, "--timeout: '" + v + "' is not a number");
      }
      if (args.timeout_s <= 0) return error(kExitUsage, "--timeout must be positive");
      args.timeout_given = true;
    } else if (a == "--limit") {
      if (!value(v)) return error(kExitUsage, "--limit needs a number");
      args.limit = static_cast<std::size_t>(std::max(1L, std::strtol(v.c_str(), nullptr, 10)));
    } else if (a == "--json") {
      args.json = true;
    } else if (a == "-v" || a == "--verbose") {
      args.verbose = true;
    } else if (a == "--check") {
      args.check = true;
    } else if (a == "--log-level") {
      if (!value(args.log_level)) return error(kExitUsage, "--log-level needs a level");
    } else if (a == "--requeue") {
      args.requeue = true;
    } else if (a == "--servers") {
      args.servers = true;
    } else if (a == "--id") {
      if (!value(v)) return error(kExitUsage, "--id needs a dead letter's id");
      args.ids.push_back(v);
    } else if (a == "--listen") {
      if (!value(args.dashboard.listen)) return error(kExitUsage, "--listen needs HOST:PORT");
      args.dashboard_flags = true;
    } else if (a == "--token") {
      if (!value(args.dashboard.token)) return error(kExitUsage, "--token needs a token");
      args.dashboard_flags = true;
    } else if (a == "--allow-actions") {
      args.dashboard.allow_actions = true;
      args.dashboard_flags = true;
    } else if (a == "--output" || a == "-o") {
      if (!value(args.output)) return error(kExitUsage, "--output needs a file");
    } else if (a.size() > 1 && a[0] == '-' && a != "-" && !(a[1] >= '0' && a[1] <= '9')) {
      return error(kExitUsage, "unknown option '" + std::string(a) + "'");
    } else if (args.command.empty()) {
      args.command = a;
    } else {
      args.positional.emplace_back(a);
    }
  }
  if (args.command.empty()) {
    std::cerr << kUsage;
    return kExitUsage;
  }
  if (args.command != "call" && args.command != "funcs" && args.command != "stats" &&
      args.command != "dead-letters" && args.command != "gen-stubs" && args.command != "serve" &&
      args.command != "dashboard") {
    return error(kExitUsage, "unknown command '" + args.command + "' (see prpc --help)");
  }
  if (!args.ids.empty() && !args.requeue) return error(kExitUsage, "--id goes with --requeue");
  if (args.requeue && args.command != "dead-letters") {
    return error(kExitUsage, "--requeue goes with dead-letters");
  }
  if (!args.output.empty() && args.command != "gen-stubs") {
    return error(kExitUsage, "--output goes with gen-stubs");
  }
  if ((args.check || !args.log_level.empty()) && args.command != "serve") {
    return error(kExitUsage,
                 std::string(args.check ? "--check" : "--log-level") + " goes with serve");
  }
  if (args.dashboard_flags && args.command != "dashboard") {
    return error(kExitUsage, "--listen, --token and --allow-actions go with dashboard");
  }
  g_out.on = colour_on(STDOUT_FILENO, args);
  g_err.on = colour_on(STDERR_FILENO, args);
  if (args.command == "gen-stubs") return command_gen_stubs(args);
  if (args.command == "serve") return command_serve(args);
  if (args.command == "dashboard") {
    if (!args.positional.empty()) return error(kExitUsage, "dashboard takes no arguments");
    args.dashboard.queues = args.queues;
    return dashboard::run(args.dashboard, args.config, args.sets);
  }
  try {
    Session session;
    if (int code = open_session(args, session); code != kExitOk) return code;
    if (args.command == "call") return command_call(session, args);
    if (args.command == "funcs") return command_funcs(session, args);
    if (args.command == "stats") return command_stats(session, args);
    return command_dead_letters(session, args);
  } catch (const std::exception& e) {
    return error(kExitFailure, std::string("unexpected error: ") + e.what());
  }
}

// prpc: the command-line client, for operators and shell scripts. It speaks the raw JSON
// protocol, so it calls any PRPC server without Python.
#include <rapidjson/document.h>

#include <iostream>
#include <string>
#include <vector>

#include "host_common.hpp"
#include "prpc/client.hpp"
#include "prpc/json.hpp"
#include "prpc/log.hpp"
#include "prpc/plugin_loader.hpp"
#include "prpc/runtime.hpp"
#include "prpc/version.h"

namespace {

using namespace prpc;
using namespace prpc::host;

constexpr std::string_view kProgram = "prpc";

constexpr const char* kUsage = R"(usage: prpc [OPTIONS] call FUNC [ARGS_JSON] [--kwargs JSON] [--timeout SECONDS]
       prpc [OPTIONS] funcs
       prpc [OPTIONS] stats
       prpc [OPTIONS] dead-letters [--limit N]

Talks to the server of one queue through the broker named by PRPC_TYPE_BROKER, PRPC_URL_BROKER
and PRPC_QUEUE_NAME (or a configuration file), with the raw JSON protocol.

  call FUNC [ARGS]   call FUNC with ARGS, a JSON array (default []); prints the result as JSON
  funcs              list the server's functions with their signatures
  stats              queue length, pending requests, consumers and dead letters
  dead-letters       the requests that were dead-lettered, with the reason

options:
  --config FILE      TOML configuration (default: $PRPC_CONFIG)
  --set KEY=VALUE    override one configuration key
  --queue NAME       the queue (same as --set queue.name=NAME)
  --json             print machine-readable JSON
  --timeout SECONDS  how long call and funcs wait for the reply (default 30)

Exit codes: 0 ok, 1 the call failed remotely, 2 usage, 3 configuration, 4 plugin,
5 broker unreachable, 6 no reply in time.
)";

struct Args {
  std::string config;
  std::vector<std::string> sets;
  std::string command;
  std::vector<std::string> positional;
  std::string kwargs = "{}";
  double timeout_s = 30;
  bool json = false;
  std::size_t limit = 100;
};

struct Session {
  Config config;
  PluginRegistry registry;
  std::shared_ptr<Broker> broker;
  std::string queue;
};

int open_session(const Args& args, Session& s) {
  auto config = load_config(args.config, args.sets);
  if (!config.is_ok()) return fail(kProgram, kExitConfig, config.status());
  s.config = std::move(*config);
  auto level = log::parse_level(s.config.get_or("log.level", "warn"));
  log::set_level(level.value_or(log::Level::kWarn));
  if (Status st = configure_plugins(s.registry, s.config); !st.is_ok()) {
    return fail(kProgram, kExitPlugin, st);
  }
  auto broker = make_configured_broker(s.registry, s.config);
  if (!broker.is_ok()) return fail(kProgram, setup_exit_code(broker.status()), broker.status());
  s.broker = std::move(*broker);
  if (Status st = s.broker->connect(); !st.is_ok()) {
    return fail(kProgram, setup_exit_code(st), st);
  }
  s.queue = s.config.get_or("queue.name", "task_prpc");
  return kExitOk;
}

// Sends one raw call and waits for its reply.
int call(Session& s, const Args& args, const std::string& func, const std::string& func_args,
         Message& reply) {
  std::string codec_name = s.config.get_or("codec.raw", "rawjson");
  auto codec = s.registry.make_codec(codec_name, options_under(s.config, "codec.options." + codec_name));
  if (!codec.is_ok()) return fail(kProgram, setup_exit_code(codec.status()), codec.status());
  Client client(ClientOptions{s.queue, Flavour::kRaw}, s.broker, *codec);
  Message request;
  request.func_name = func;
  request.func_args = func_args;
  request.func_kwargs = args.kwargs;
  auto timeout = std::chrono::milliseconds(static_cast<std::int64_t>(args.timeout_s * 1000));
  auto r = client.call_sync(std::move(request), timeout);
  if (!r.is_ok()) {
    int code = r.status().code() == StatusCode::kTimeout ? kExitTimeout
               : r.status().code() == StatusCode::kUnavailable ? kExitUnreachable
                                                                : kExitFailure;
    return fail(kProgram, code, r.status().message() + " (queue '" + s.queue + "')");
  }
  reply = std::move(*r);
  return kExitOk;
}

int command_call(Session& s, const Args& args) {
  if (args.positional.empty() || args.positional.size() > 2) {
    return fail(kProgram, kExitUsage, "call needs FUNC and optionally ARGS_JSON");
  }
  std::string func_args = args.positional.size() == 2 ? args.positional[1] : "[]";
  for (const auto& [what, text, type] :
       {std::tuple{"ARGS_JSON", func_args, json::Type::kArray},
        std::tuple{"--kwargs", args.kwargs, json::Type::kObject}}) {
    Status valid = json::validate(text, {});
    if (!valid.is_ok()) return fail(kProgram, kExitUsage, std::string(what) + ": " + valid.message());
    if (json::peek_type(text) != type) {
      return fail(kProgram, kExitUsage,
                  std::string(what) + " must be a JSON " + std::string(json::type_name(type)));
    }
  }
  Message reply;
  if (int code = call(s, args, args.positional[0], func_args, reply); code != kExitOk) return code;
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

std::string signature(const rapidjson::Value& spec) {
  std::string out = "(";
  if (spec.IsObject() && spec.HasMember("parameters") && spec["parameters"].IsArray()) {
    bool first = true;
    bool star_done = false;
    for (const auto& p : spec["parameters"].GetArray()) {
      if (!p.IsObject() || !p.HasMember("name") || !p["name"].IsString()) continue;
      std::string kind = p.HasMember("kind") && p["kind"].IsString() ? p["kind"].GetString() : "";
      if (!first) out += ", ";
      first = false;
      if (kind == "KEYWORD_ONLY" && !star_done) {
        out += "*, ";
        star_done = true;
      }
      if (kind == "VAR_POSITIONAL") {
        out += "*";
        star_done = true;
      }
      if (kind == "VAR_KEYWORD") out += "**";
      out += p["name"].GetString();
      if (p.HasMember("annotation") && p["annotation"].IsString()) {
        out += std::string(": ") + p["annotation"].GetString();
      }
      if (p.HasMember("default") && p["default"].IsString()) {
        out += std::string(p.HasMember("annotation") ? " = " : "=") + p["default"].GetString();
      }
    }
  }
  out += ")";
  if (spec.IsObject() && spec.HasMember("return_annotation") &&
      spec["return_annotation"].IsString()) {
    out += std::string(" -> ") + spec["return_annotation"].GetString();
  }
  return out;
}

int command_funcs(Session& s, const Args& args) {
  Message reply;
  if (int code = call(s, args, "get_function_server", "[]", reply); code != kExitOk) return code;
  if (reply.failed()) return fail(kProgram, kExitFailure, *reply.exception_info);
  if (args.json) {
    std::cout << reply.result << "\n";
    return kExitOk;
  }
  rapidjson::Document d;
  d.Parse(reply.result.c_str(), reply.result.size());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("functions") ||
      !d["functions"].IsArray()) {
    return fail(kProgram, kExitFailure, "the server's manifest is not understood");
  }
  for (const auto& f : d["functions"].GetArray()) {
    if (!f.IsObject() || !f.HasMember("name") || !f["name"].IsString()) continue;
    std::cout << f["name"].GetString()
              << (f.HasMember("spec") ? signature(f["spec"]) : std::string("(...)"));
    if (f.HasMember("worker") && f["worker"].IsString()) {
      std::cout << "  [" << f["worker"].GetString() << "]";
    }
    if (f.HasMember("doc") && f["doc"].IsString() && f["doc"].GetStringLength() > 0) {
      std::string doc = f["doc"].GetString();
      std::cout << "\n    " << doc.substr(0, doc.find('\n'));
    }
    std::cout << "\n";
  }
  return kExitOk;
}

int command_stats(Session& s, const Args& args) {
  auto st = s.broker->queue_stats(s.queue);
  if (!st.is_ok()) return fail(kProgram, kExitFailure, st.status());
  if (args.json) {
    std::cout << "{\"queue\": " << json::quote(s.queue) << ", \"length\": " << st->length
              << ", \"pending\": " << st->pending << ", \"consumers\": " << st->consumers
              << ", \"dead_letters\": " << st->dead_letters << "}\n";
  } else {
    std::cout << "queue " << s.queue << ": " << st->length << " waiting, " << st->pending
              << " pending, " << st->consumers << " consumers, " << st->dead_letters
              << " dead letters\n";
  }
  return kExitOk;
}

int command_dead_letters(Session& s, const Args& args) {
  auto letters = s.broker->dead_letters(s.queue, args.limit);
  if (!letters.is_ok()) return fail(kProgram, kExitFailure, letters.status());
  if (args.json) std::cout << "[";
  bool first = true;
  for (const DeadLetter& d : *letters) {
    if (args.json) {
      std::cout << (first ? "" : ", ") << "{\"id\": " << json::quote(d.id)
                << ", \"flavour\": " << json::quote(flavour_name(d.flavour))
                << ", \"reason\": " << json::quote(d.reason)
                << ", \"payload\": " << json::quote(d.payload) << "}";
    } else {
      std::cout << d.id << " [" << flavour_name(d.flavour) << "] " << d.reason << "\n    "
                << d.payload.substr(0, 200) << (d.payload.size() > 200 ? "..." : "") << "\n";
    }
    first = false;
  }
  if (args.json) std::cout << "]\n";
  return kExitOk;
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
      if (!value(args.config)) return fail(kProgram, kExitUsage, "--config needs a file");
    } else if (a == "--set") {
      if (!value(v)) return fail(kProgram, kExitUsage, "--set needs KEY=VALUE");
      args.sets.push_back(v);
    } else if (a == "--queue") {
      if (!value(v)) return fail(kProgram, kExitUsage, "--queue needs a name");
      args.sets.push_back("queue.name=" + v);
    } else if (a == "--kwargs") {
      if (!value(args.kwargs)) return fail(kProgram, kExitUsage, "--kwargs needs a JSON object");
    } else if (a == "--timeout") {
      if (!value(v)) return fail(kProgram, kExitUsage, "--timeout needs seconds");
      try {
        args.timeout_s = std::stod(v);
      } catch (...) {
        return fail(kProgram, kExitUsage, "--timeout: '" + v + "' is not a number");
      }
      if (args.timeout_s <= 0) return fail(kProgram, kExitUsage, "--timeout must be positive");
    } else if (a == "--limit") {
      if (!value(v)) return fail(kProgram, kExitUsage, "--limit needs a number");
      args.limit = static_cast<std::size_t>(std::max(1L, std::strtol(v.c_str(), nullptr, 10)));
    } else if (a == "--json") {
      args.json = true;
    } else if (a.size() > 1 && a[0] == '-' && a != "-" && !(a[1] >= '0' && a[1] <= '9')) {
      return fail(kProgram, kExitUsage, "unknown option '" + std::string(a) + "'");
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
      args.command != "dead-letters") {
    return fail(kProgram, kExitUsage, "unknown command '" + args.command + "' (see prpc --help)");
  }
  try {
    Session session;
    if (int code = open_session(args, session); code != kExitOk) return code;
    if (args.command == "call") return command_call(session, args);
    if (args.command == "funcs") return command_funcs(session, args);
    if (args.command == "stats") return command_stats(session, args);
    return command_dead_letters(session, args);
  } catch (const std::exception& e) {
    return fail(kProgram, kExitFailure, std::string("unexpected error: ") + e.what());
  }
}

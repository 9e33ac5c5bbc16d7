// prpc-kafka-test-server: a prpc::Server on the Kafka broker in its own process, serving the
// example functions, for tests that kill a server mid-call and for the benchmark.
//
//   prpc-kafka-test-server --plugins DIR --url BOOTSTRAP --queue Q [--workers N] [--set k=v]...
//
// Prints "READY" once consuming, and "START <func> <message_id>" when a call starts. Stops on
// SIGTERM/SIGINT (draining) and dies on SIGKILL like any server.
#include <signal.h>

#include <cstdio>
#include <iostream>
#include <map>
#include <mutex>
#include <string>

#include "prpc/plugin_loader.hpp"
#include "prpc/server.hpp"

namespace {

// Announces each call on stdout, so a test knows which server runs it.
class AnnouncingFunctions final : public prpc::FunctionTable {
 public:
  explicit AnnouncingFunctions(std::shared_ptr<prpc::FunctionTable> inner)
      : inner_(std::move(inner)) {}
  std::vector<prpc::FunctionInfo> list() const override { return inner_->list(); }
  void invoke(const prpc::Invocation& call, prpc::OutcomeCallback done) override {
    {
      static std::mutex m;
      std::lock_guard lock(m);
      std::cout << "START " << call.func_name << " " << call.message_id << std::endl;
    }
    inner_->invoke(call, std::move(done));
  }
  void cancel(std::uint64_t call_id) override { inner_->cancel(call_id); }

 private:
  std::shared_ptr<prpc::FunctionTable> inner_;
};

template <typename T>
T need(prpc::Result<T> r, const char* what) {
  if (!r.is_ok()) {
    std::cerr << what << ": " << r.status().to_string() << std::endl;
    std::exit(1);
  }
  return std::move(r).value();
}

}  // namespace

int main(int argc, char** argv) {
  // Signals are taken by sigwait below; every thread started from here on inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  std::string plugins;
  std::string queue = "task_prpc";
  std::string workers = "4";
  bool announce = true;
  prpc::OptionValues broker_options;
  for (int i = 1; i + 1 < argc || (i < argc && std::string(argv[i]) == "--quiet"); ++i) {
    std::string a = argv[i];
    if (a == "--quiet") {
      announce = false;
      continue;
    }
    std::string v = argv[++i];
    if (a == "--plugins") {
      plugins = v;
    } else if (a == "--url") {
      broker_options["url"] = v;
    } else if (a == "--queue") {
      queue = v;
    } else if (a == "--workers") {
      workers = v;
    } else if (a == "--set") {
      auto eq = v.find('=');
      broker_options[v.substr(0, eq)] = eq == std::string::npos ? "" : v.substr(eq + 1);
    } else {
      std::cerr << "unknown argument " << a << std::endl;
      return 2;
    }
  }
  prpc::PluginRegistry registry(plugins.empty() ? prpc::PluginRegistry::default_search_path()
                                                : std::vector<std::filesystem::path>{plugins});
  auto broker = need(registry.make_broker("kafka", broker_options), "broker");
  auto codec = need(registry.make_codec("rawjson", {}), "codec");
  std::shared_ptr<prpc::FunctionTable> functions =
      need(registry.make_functions("example", {}), "functions");
  if (announce) functions = std::make_shared<AnnouncingFunctions>(functions);
  auto executor =
      need(registry.make_executor("thread", {{"workers", workers}}, functions), "executor");
  prpc::ServerOptions options;
  options.queue = queue;
  options.drain_grace = std::chrono::seconds(5);
  prpc::Server server(options, broker, codec, codec, functions, {{"thread", executor}});
  prpc::Status s = server.start();
  if (!s.is_ok()) {
    std::cerr << "start: " << s.to_string() << std::endl;
    return 1;
  }
  std::cout << "READY" << std::endl;
  int signo = 0;
  sigwait(&stop_signals, &signo);
  server.stop(options.drain_grace);
  return 0;
}

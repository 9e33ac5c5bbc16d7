// prpc-host gives a process executor without worker_command the prpc-worker next to it, with
// its own --config and --set flags; that command starts workers that serve the same functions.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <mutex>

#include "process.hpp"
#include "process_executor.hpp"

namespace prpc::process {
namespace {

using namespace std::chrono_literals;
using testing::wait_until;

const std::string kBin = std::string(PRPC_TEST_BINARY_DIR) + "/bin";

// Runs `prpc-host --check` and returns the worker_command it resolved for `worker`.
std::string checked_worker_command(const std::vector<std::string>& flags,
                                   const std::string& worker = "process") {
  testing::TempDir dir;
  std::vector<std::string> argv{kBin + "/prpc-host", "--check"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  auto host = testing::ChildProcess::start(argv, dir.path() / "host.log");
  int code = host.wait(30s);
  std::string out = host.output();
  EXPECT_EQ(code, 0) << out;
  std::string header = "executor 'process' (worker type '" + worker + "')";
  std::size_t at = out.find(header);
  if (at == std::string::npos) {
    ADD_FAILURE() << "no " << header << " in:\n" << out;
    return {};
  }
  std::size_t line = out.find("  worker_command = ", at);
  std::size_t start = out.find('[', line);
  std::size_t end = out.find("]  [string", start);
  if (line == std::string::npos || start == std::string::npos || end == std::string::npos) {
    ADD_FAILURE() << "no worker_command in:\n" << out;
    return {};
  }
  return out.substr(start, end + 1 - start);
}

const std::vector<std::string> kFlags = {"--set", "broker.type=memory",
                                         "--set", "codec.python=none",
                                         "--set", "functions.plugins=[\"example\"]",
                                         "--set", "executors.process.workers=1",
                                         "--set", "server.default_worker=process"};

class Unused final : public Invoker {
 public:
  void invoke(const Invocation&, OutcomeCallback done) override {
    done(Outcome::failure(StatusCode::kInternal, "InternalError", "in the parent"));
  }
};

TEST(HostWorkerCommand, DefaultsToPrpcWorkerWithTheHostsFlags) {
  std::string text = checked_worker_command(kFlags);
  auto command = parse_worker_command(text);
  ASSERT_TRUE(command.is_ok()) << command.status().to_string() << "\n" << text;
  // All but the broker's settings, which workers do not use.
  std::vector<std::string> expected{kBin + "/prpc-worker"};
  for (const std::string& f : kFlags) expected.push_back(f);
  expected.erase(expected.begin() + 1, expected.begin() + 3);  // --set broker.type=memory
  EXPECT_EQ(*command, expected);

  // The command it chose starts workers that serve the host's functions.
  Unused unused;
  ProcessOptions o;
  o.workers = 1;
  o.command = *command;
  ProcessExecutor ex(o, unused);
  std::mutex mutex;
  std::optional<Outcome> got;
  Invocation call;
  call.call_id = 1;
  call.func_name = "summ";
  call.args = "[40, 1]";
  ex.submit(call, [&](Outcome out) {
    std::lock_guard lock(mutex);
    got = std::move(out);
  });
  ASSERT_TRUE(wait_until(
      [&] {
        std::lock_guard lock(mutex);
        return got.has_value();
      },
      20s));
  EXPECT_EQ(got->result, "41.5");
}

TEST(HostWorkerCommand, SecretsAndBrokerSettingsStayWithTheHost) {
  std::vector<std::string> flags = kFlags;
  flags.insert(flags.end(), {"--set", "broker.url=memory://hunter2hunter2", "--set",
                             "security.signing_key=0123456789abcdef0123", "--set",
                             "telemetry.api_token=tok-tok-tok"});
  std::string text = checked_worker_command(flags);
  for (const char* secret : {"hunter2", "0123456789abcdef0123", "tok-tok-tok", "broker."}) {
    EXPECT_EQ(text.find(secret), std::string::npos) << text;
  }
  EXPECT_NE(text.find("functions.plugins"), std::string::npos) << text;
}

TEST(HostWorkerCommand, PassesTheConfigFileByItsAbsolutePath) {
  testing::TempDir dir;
  std::filesystem::path file = dir.path() / "app.toml";
  std::ofstream(file) << "[broker]\ntype = \"memory\"\n[codec]\npython = \"none\"\n"
                         "[functions]\nplugins = [\"example\"]\n"
                         "[executors.cpu]\nplugin = \"process\"\nworkers = 1\n";
  std::string text = checked_worker_command({"--config", file.string()}, "cpu");
  auto command = parse_worker_command(text);
  ASSERT_TRUE(command.is_ok()) << text;
  EXPECT_EQ(*command, (std::vector<std::string>{kBin + "/prpc-worker", "--config",
                                                std::filesystem::absolute(file).string()}));
}

TEST(HostWorkerCommand, AnExplicitCommandIsKept) {
  std::vector<std::string> flags = kFlags;
  flags.insert(flags.end(), {"--set", R"(executors.process.worker_command=["/bin/my-worker"])"});
  EXPECT_EQ(checked_worker_command(flags), R"(["/bin/my-worker"])");
}

}  // namespace
}  // namespace prpc::process

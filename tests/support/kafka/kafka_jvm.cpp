#include "kafka_jvm.hpp"

#include <array>
#include <cstdint>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

namespace prpc::testing::details {

std::string new_kafka_cluster_id() {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::random_device rd;
  while (true) {
    std::array<unsigned char, 16> b{};
    for (auto& c : b) c = static_cast<unsigned char>(rd());
    std::string out;
    std::uint32_t acc = 0;
    int bits = 0;
    for (unsigned char c : b) {
      acc = (acc << 8) | c;
      bits += 8;
      while (bits >= 6) {
        bits -= 6;
        out += kAlphabet[(acc >> bits) & 0x3f];
      }
    }
    if (bits > 0) out += kAlphabet[(acc << (6 - bits)) & 0x3f];
    if (out.front() != '-') return out;
  }
}

std::string file_tail(const std::filesystem::path& file, std::size_t bytes) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > bytes ? s.substr(s.size() - bytes) : s;
}

void write_kafka_log4j(const std::filesystem::path& properties,
                       const std::filesystem::path& log_file,
                       const std::vector<std::string>& info_loggers) {
  std::ofstream l(properties, std::ios::trunc);
  l << "log4j.rootLogger=WARN, file\n"
    << "log4j.appender.file=org.apache.log4j.FileAppender\n"
    << "log4j.appender.file.File=" << log_file.string() << "\n"
    << "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
    << "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
    << "log4j.logger.kafka.server.KafkaServer=INFO\n"
    << "log4j.logger.kafka.server.BrokerServer=INFO\n";
  for (const std::string& logger : info_loggers) l << "log4j.logger." << logger << "=INFO\n";
}

ChildProcess start_kafka_format(const std::string& classpath, const std::string& cluster_id,
                                const std::filesystem::path& properties,
                                const std::filesystem::path& log_file,
                                const std::vector<std::string>& extra_args) {
  // A short-lived tool: the client compiler only, a small heap.
  std::vector<std::string> argv{"java",
                                "-Xshare:auto",
                                "-Xmx128m",
                                "-XX:TieredStopAtLevel=1",
                                "-XX:+UseSerialGC",
                                "-cp",
                                classpath,
                                "kafka.tools.StorageTool",
                                "format",
                                "-t",
                                cluster_id,
                                "-c",
                                properties.string()};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  return ChildProcess::start(argv, log_file);
}

void finish_kafka_format(ChildProcess& format, const std::filesystem::path& log_file) {
  int rc = format.wait(std::chrono::seconds(120));
  if (rc == -1) format.kill_now();
  if (rc != 0) {
    throw std::runtime_error("kafka StorageTool format failed (" + std::to_string(rc) + "):\n" +
                             file_tail(log_file));
  }
}

ChildProcess start_kafka_jvm(const std::string& classpath, const std::filesystem::path& dir,
                             const std::filesystem::path& properties,
                             const std::filesystem::path& stdout_log) {
  // Small heaps: the test machine has 2 cores and other builds; a test broker holds little.
  return ChildProcess::start(
      {"java", "-Xms64m", "-Xmx256m", "-XX:+UseSerialGC", "-Djava.awt.headless=true",
       "-Dlog4j.configuration=file:" + (dir / "log4j.properties").string(),
       "-Dkafka.logs.dir=" + (dir / "logs").string(), "-cp", classpath, "kafka.Kafka",
       properties.string()},
      stdout_log);
}

}  // namespace prpc::testing::details

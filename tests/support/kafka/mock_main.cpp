// prpc-kafka-mock: librdkafka's mock cluster in its own process, for tests in any language.
//
//   prpc-kafka-mock [--brokers N] [--topic NAME:PARTITIONS]...
//
// Prints "BOOTSTRAP host:port[,host:port...]" on stdout once the cluster listens, then reads one
// command per line on stdin and answers each with "ok" or "error <text>":
//   topic NAME PARTITIONS [REPLICATION]   create a topic
//   down BROKER | up BROKER               stop / resume a broker's listener (-1: all brokers)
//   rtt BROKER MS                         add round-trip time to a broker's responses
//   error API ERR [COUNT]                 fail the next COUNT requests of API (a number or a name
//                                         such as Produce, Fetch, OffsetCommit) with ERR (a
//                                         number or a name such as NOT_LEADER_FOR_PARTITION or
//                                         _TRANSPORT, which drops the connection)
//   clear API                             forget the errors queued for API
//   quit                                  exit (end of input does the same)
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::optional<long> parse_long(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  long v = std::strtol(s.c_str(), &end, 10);
  if (end == nullptr || *end != '\0') return std::nullopt;
  return v;
}

std::optional<int> api_key(const std::string& name) {
  static const std::map<std::string, int> keys = {
      {"Produce", 0},      {"Fetch", 1},        {"ListOffsets", 2},      {"Metadata", 3},
      {"OffsetCommit", 8}, {"OffsetFetch", 9},  {"FindCoordinator", 10}, {"JoinGroup", 11},
      {"Heartbeat", 12},   {"LeaveGroup", 13},  {"SyncGroup", 14},       {"DescribeGroups", 15},
      {"ListGroups", 16},  {"ApiVersions", 18}, {"CreateTopics", 19},    {"InitProducerId", 22}};
  if (auto it = keys.find(name); it != keys.end()) return it->second;
  if (auto n = parse_long(name)) return static_cast<int>(*n);
  return std::nullopt;
}

std::optional<rd_kafka_resp_err_t> error_code(const std::string& name) {
  if (auto n = parse_long(name)) return static_cast<rd_kafka_resp_err_t>(*n);
  const rd_kafka_err_desc* descs = nullptr;
  size_t count = 0;
  rd_kafka_get_err_descs(&descs, &count);
  for (size_t i = 0; i < count; ++i) {
    if (descs[i].name != nullptr && name == descs[i].name) return descs[i].code;
  }
  return std::nullopt;
}

std::string run(rd_kafka_mock_cluster_t* mc, const std::vector<std::string>& w) {
  auto need = [&w](std::size_t n) { return w.size() >= n; };
  const std::string& cmd = w[0];
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (cmd == "topic" && need(3)) {
    auto parts = parse_long(w[2]);
    long rf = 1;
    if (w.size() > 3) rf = parse_long(w[3]).value_or(0);
    if (!parts || *parts < 1 || rf < 1) return "error bad numbers";
    err = rd_kafka_mock_topic_create(mc, w[1].c_str(), static_cast<int>(*parts),
                                     static_cast<int>(rf));
  } else if ((cmd == "down" || cmd == "up") && need(2)) {
    auto id = parse_long(w[1]);
    if (!id) return "error bad broker id";
    err = cmd == "down" ? rd_kafka_mock_broker_set_down(mc, static_cast<int32_t>(*id))
                        : rd_kafka_mock_broker_set_up(mc, static_cast<int32_t>(*id));
  } else if (cmd == "rtt" && need(3)) {
    auto id = parse_long(w[1]);
    auto ms = parse_long(w[2]);
    if (!id || !ms) return "error bad numbers";
    err = rd_kafka_mock_broker_set_rtt(mc, static_cast<int32_t>(*id), static_cast<int>(*ms));
  } else if (cmd == "error" && need(3)) {
    auto api = api_key(w[1]);
    auto code = error_code(w[2]);
    long count = w.size() > 3 ? parse_long(w[3]).value_or(0) : 1;
    if (!api) return "error unknown API " + w[1];
    if (!code) return "error unknown error code " + w[2];
    if (count < 1) return "error bad count";
    std::vector<rd_kafka_resp_err_t> errors(static_cast<std::size_t>(count), *code);
    rd_kafka_mock_push_request_errors_array(mc, static_cast<int16_t>(*api), errors.size(),
                                            errors.data());
  } else if (cmd == "clear" && need(2)) {
    auto api = api_key(w[1]);
    if (!api) return "error unknown API " + w[1];
    rd_kafka_mock_clear_request_errors(mc, static_cast<int16_t>(*api));
  } else {
    return "error unknown command (topic, down, up, rtt, error, clear, quit)";
  }
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return std::string("error ") + rd_kafka_err2str(err);
  return "ok";
}

}  // namespace

int main(int argc, char** argv) {
  int brokers = 1;
  std::vector<std::pair<std::string, int>> topics;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--brokers" && i + 1 < argc) {
      brokers = std::atoi(argv[++i]);
    } else if (a == "--topic" && i + 1 < argc) {
      std::string t = argv[++i];
      auto colon = t.rfind(':');
      if (colon == std::string::npos) {
        std::cerr << "--topic wants NAME:PARTITIONS\n";
        return 2;
      }
      topics.emplace_back(t.substr(0, colon), std::atoi(t.c_str() + colon + 1));
    } else {
      std::cerr << "usage: prpc-kafka-mock [--brokers N] [--topic NAME:PARTITIONS]...\n";
      return 2;
    }
  }
  if (brokers < 1) brokers = 1;
  std::signal(SIGPIPE, SIG_IGN);

  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (rk == nullptr) {
    std::cerr << "rd_kafka_new: " << err << "\n";
    return 1;
  }
  rd_kafka_mock_cluster_t* mc = rd_kafka_mock_cluster_new(rk, brokers);
  if (mc == nullptr) {
    std::cerr << "cannot create the mock cluster\n";
    rd_kafka_destroy(rk);
    return 1;
  }
  for (const auto& [name, parts] : topics) {
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, name.c_str(), parts, 1);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::cerr << "topic " << name << ": " << rd_kafka_err2str(e) << "\n";
    }
  }
  std::cout << "BOOTSTRAP " << rd_kafka_mock_cluster_bootstraps(mc) << std::endl;

  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::vector<std::string> words;
    for (std::string w; in >> w;) words.push_back(w);
    if (words.empty()) continue;
    if (words[0] == "quit") break;
    std::cout << run(mc, words) << std::endl;
  }
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(rk);
  return 0;
}

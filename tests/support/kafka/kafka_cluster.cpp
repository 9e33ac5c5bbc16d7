#include "kafka_cluster.hpp"

#include <algorithm>
#include <fstream>
#include <set>
#include <stdexcept>

#include "kafka_fixtures.hpp"
#include "kafka_jvm.hpp"

namespace prpc::testing {

struct KafkaCluster::Node {
  int id = 0;
  int port = 0;
  int controller_port = 0;
  std::filesystem::path dir;
  ChildProcess process;
  // Bootstrapped at this node only, to ask it (not any broker) for metadata.
  std::unique_ptr<rd_kafka_t, HandleFree> probe;
};

namespace {

struct MetadataFree {
  void operator()(const rd_kafka_metadata_t* md) const noexcept { rd_kafka_metadata_destroy(md); }
};
using MetadataPtr = std::unique_ptr<const rd_kafka_metadata_t, MetadataFree>;

rd_kafka_t* new_handle(const std::string& bootstrap) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // Quiet: the tests kill brokers on purpose, and each lost connection would be logged.
  for (const auto& [k, v] :
       std::map<std::string, std::string>{{"bootstrap.servers", bootstrap},
                                          {"log_level", "0"},
                                          {"reconnect.backoff.max.ms", "500"}}) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error(std::string("librdkafka: ") + err);
    }
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (rk == nullptr) throw std::runtime_error(std::string("rd_kafka_new: ") + err);
  return rk;
}

MetadataPtr fetch_metadata(rd_kafka_t* rk, int timeout_ms) {
  const rd_kafka_metadata_t* md = nullptr;
  if (rd_kafka_metadata(rk, 1, nullptr, &md, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return nullptr;
  }
  return MetadataPtr(md);
}

}  // namespace

KafkaCluster::KafkaCluster(KafkaClusterOptions options)
    : options_(std::move(options)), classpath_(kafka_classpath()) {
  if (options_.brokers < 1) throw std::invalid_argument("a Kafka cluster needs a broker");
  std::set<int> taken;
  auto fresh_port = [&taken] {
    int p = free_port();
    while (taken.count(p) != 0) p = free_port();
    taken.insert(p);
    return p;
  };
  std::string voters;
  for (int i = 1; i <= options_.brokers; ++i) {
    auto n = std::make_unique<Node>();
    n->id = i;
    n->port = fresh_port();
    n->controller_port = fresh_port();
    n->dir = dir_.path() / ("node" + std::to_string(i));
    std::filesystem::create_directories(n->dir);
    voters += (i == 1 ? "" : ",") + std::to_string(i) +
              "@127.0.0.1:" + std::to_string(n->controller_port);
    bootstrap_ += (i == 1 ? "" : ",") + std::string("127.0.0.1:") + std::to_string(n->port);
    nodes_.push_back(std::move(n));
  }
  const int rf = options_.replication_factor;
  const int min_isr = options_.min_insync_replicas;
  for (const auto& n : nodes_) {
    std::ofstream p(n->dir / "server.properties");
    p << "process.roles=broker,controller\n"
      << "node.id=" << n->id << "\n"
      << "controller.quorum.voters=" << voters << "\n"
      << "listeners=PLAINTEXT://127.0.0.1:" << n->port
      << ",CONTROLLER://127.0.0.1:" << n->controller_port << "\n"
      << "advertised.listeners=PLAINTEXT://127.0.0.1:" << n->port << "\n"
      << "controller.listener.names=CONTROLLER\n"
      << "inter.broker.listener.name=PLAINTEXT\n"
      << "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n"
      << "log.dirs=" << (n->dir / "data").string() << "\n"
      << "num.partitions=" << options_.default_partitions << "\n"
      << "default.replication.factor=" << rf << "\n"
      << "min.insync.replicas=" << min_isr << "\n"
      << "unclean.leader.election.enable=false\n"
      << "auto.create.topics.enable=true\n"
      << "offsets.topic.replication.factor=" << rf << "\n"
      << "offsets.topic.num.partitions=3\n"
      << "transaction.state.log.replication.factor=" << rf << "\n"
      << "transaction.state.log.min.isr=" << std::min(min_isr, rf) << "\n"
      << "transaction.state.log.num.partitions=3\n"
      << "group.initial.rebalance.delay.ms=0\n"
      << "group.min.session.timeout.ms=1000\n"
      << "broker.heartbeat.interval.ms=500\n"
      << "broker.session.timeout.ms=" << options_.session_timeout_ms << "\n"
      << "num.network.threads=2\n"
      << "num.io.threads=2\n"
      << "background.threads=2\n"
      << "num.replica.fetchers=1\n"
      << "log.segment.bytes=16777216\n";
    for (const std::string& line : options_.extra_properties) p << line << "\n";
    p.close();
    details::write_kafka_log4j(n->dir / "log4j.properties", n->dir / "kafka.log");
  }
  // Format every node at once: each is a JVM start.
  const std::string cluster_id = details::new_kafka_cluster_id();
  std::vector<ChildProcess> formats;
  for (const auto& n : nodes_) {
    formats.push_back(details::start_kafka_format(
        classpath_, cluster_id, n->dir / "server.properties", n->dir / "format.log"));
  }
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    details::finish_kafka_format(formats[i], nodes_[i]->dir / "format.log");
  }
  for (auto& n : nodes_) launch(*n);
  bool ready = wait_until(
      [this] {
        for (auto& n : nodes_) {
          if (!n->process.running()) return true;  // reported below
        }
        return wait_for_kafka({{"bootstrap.servers", bootstrap_}}, std::chrono::seconds(1),
                              options_.brokers);
      },
      std::chrono::seconds(120), std::chrono::milliseconds(100));
  for (auto& n : nodes_) {
    if (!n->process.running()) {
      throw std::runtime_error("Kafka node " + std::to_string(n->id) + " exited:\n" +
                               details::file_tail(n->dir / "kafka.log") +
                               details::file_tail(n->dir / "stdout.log"));
    }
  }
  if (!ready) {
    throw std::runtime_error("the Kafka cluster at " + bootstrap_ + " did not form:\n" +
                             details::file_tail(nodes_.front()->dir / "kafka.log"));
  }
  admin_.reset(new_handle(bootstrap_));
}

KafkaCluster::~KafkaCluster() {
  admin_.reset();
  for (auto& n : nodes_) n->probe.reset();
  // SIGKILL: nothing to keep, and a controlled shutdown of the last nodes waits for a quorum.
  for (auto& n : nodes_) n->process.kill_now();
}

void KafkaCluster::launch(Node& n) {
  n.process = details::start_kafka_jvm(classpath_, n.dir, n.dir / "server.properties",
                                       n.dir / "stdout.log");
}

KafkaCluster::Node& KafkaCluster::node(int node_id) {
  if (node_id < 1 || node_id > static_cast<int>(nodes_.size())) {
    throw std::invalid_argument("no Kafka node " + std::to_string(node_id));
  }
  return *nodes_[static_cast<std::size_t>(node_id - 1)];
}

const KafkaCluster::Node& KafkaCluster::node(int node_id) const {
  if (node_id < 1 || node_id > static_cast<int>(nodes_.size())) {
    throw std::invalid_argument("no Kafka node " + std::to_string(node_id));
  }
  return *nodes_[static_cast<std::size_t>(node_id - 1)];
}

std::vector<int> KafkaCluster::node_ids() const {
  std::vector<int> out;
  for (const auto& n : nodes_) out.push_back(n->id);
  return out;
}

std::string KafkaCluster::broker_address(int node_id) const {
  return "127.0.0.1:" + std::to_string(node(node_id).port);
}

std::filesystem::path KafkaCluster::log_file(int node_id) const {
  return node(node_id).dir / "kafka.log";
}

// ---- faults -----------------------------------------------------------------------------------

bool KafkaCluster::running(int node_id) { return node(node_id).process.running(); }

void KafkaCluster::kill(int node_id) {
  Node& n = node(node_id);
  n.process.kill_now();
  n.probe.reset();
}

void KafkaCluster::stop(int node_id) {
  Node& n = node(node_id);
  if (n.process.running()) n.process.stop(std::chrono::seconds(30));
  n.probe.reset();
}

void KafkaCluster::start(int node_id) {
  Node& n = node(node_id);
  if (n.process.running()) return;
  launch(n);
  // Ready when the node itself answers a metadata request and lists itself (registered and
  // unfenced).
  std::unique_ptr<rd_kafka_t, HandleFree> rk(new_handle(broker_address(node_id)));
  bool ready = wait_until(
      [&] {
        if (!n.process.running()) return true;
        auto md = fetch_metadata(rk.get(), 1000);
        if (!md || md->orig_broker_id != node_id) return false;
        for (int i = 0; i < md->broker_cnt; ++i) {
          if (md->brokers[i].id == node_id) return true;
        }
        return false;
      },
      std::chrono::seconds(120), std::chrono::milliseconds(100));
  if (!ready || !n.process.running()) {
    throw std::runtime_error("Kafka node " + std::to_string(node_id) + " did not come back:\n" +
                             details::file_tail(n.dir / "kafka.log") +
                             details::file_tail(n.dir / "stdout.log"));
  }
}

void KafkaCluster::restart(int node_id) {
  stop(node_id);
  start(node_id);
}

// ---- topics -----------------------------------------------------------------------------------

void KafkaCluster::create_topic(const std::string& name, int partitions, int replication_factor,
                                const std::map<std::string, std::string>& configs) {
  if (partitions < 0) partitions = options_.default_partitions;
  if (replication_factor < 0) replication_factor = options_.replication_factor;
  char err[512];
  rd_kafka_t* rk = admin_.get();
  rd_kafka_NewTopic_t* topic =
      rd_kafka_NewTopic_new(name.c_str(), partitions, replication_factor, err, sizeof(err));
  if (topic == nullptr) throw std::invalid_argument(std::string("NewTopic: ") + err);
  std::map<std::string, std::string> all = configs;
  all.emplace("min.insync.replicas",
              std::to_string(std::min(options_.min_insync_replicas, replication_factor)));
  for (const auto& [k, v] : all) rd_kafka_NewTopic_set_config(topic, k.c_str(), v.c_str());
  rd_kafka_AdminOptions_t* opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_request_timeout(opts, 30000, err, sizeof(err));
  rd_kafka_AdminOptions_set_operation_timeout(opts, 30000, err, sizeof(err));
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, &topic, 1, opts, queue);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(queue, 60000);
  std::string failure;
  if (ev == nullptr) {
    failure = "no answer";
  } else if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    failure = rd_kafka_event_error_string(ev);
  } else {
    std::size_t n = 0;
    const rd_kafka_topic_result_t** results =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    for (std::size_t i = 0; i < n; ++i) {
      if (rd_kafka_topic_result_error(results[i]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        failure = rd_kafka_topic_result_error_string(results[i]);
      }
    }
  }
  if (ev != nullptr) rd_kafka_event_destroy(ev);
  rd_kafka_queue_destroy(queue);
  rd_kafka_AdminOptions_destroy(opts);
  rd_kafka_NewTopic_destroy(topic);
  if (!failure.empty()) throw std::runtime_error("CreateTopics " + name + ": " + failure);
  wait_for_leaders(name, std::min(options_.min_insync_replicas, replication_factor));
}

void KafkaCluster::create_queue_topics(const std::string& queue, int partitions) {
  for (const std::string& t : kafka_queue_topics(queue)) create_topic(t, partitions);
}

std::map<std::string, std::string> KafkaCluster::topic_config(const std::string& topic) {
  // The broker asked may not have the metadata of a topic created a moment ago: ask again.
  std::map<std::string, std::string> out;
  std::string failure;
  wait_until(
      [&] {
        failure = describe_topic_config(topic, out);
        return failure.find("Unknown topic") == std::string::npos;
      },
      std::chrono::seconds(15), std::chrono::milliseconds(100));
  if (!failure.empty()) throw std::runtime_error("DescribeConfigs " + topic + ": " + failure);
  return out;
}

std::string KafkaCluster::describe_topic_config(const std::string& topic,
                                                std::map<std::string, std::string>& out) {
  out.clear();
  char err[512];
  rd_kafka_t* rk = admin_.get();
  rd_kafka_ConfigResource_t* resource =
      rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str());
  rd_kafka_AdminOptions_t* opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
  rd_kafka_AdminOptions_set_request_timeout(opts, 30000, err, sizeof(err));
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_DescribeConfigs(rk, &resource, 1, opts, queue);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(queue, 60000);
  std::string failure;
  if (ev == nullptr) {
    failure = "no answer";
  } else if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    failure = rd_kafka_event_error_string(ev);
  } else {
    std::size_t n = 0;
    const rd_kafka_ConfigResource_t** resources =
        rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &n);
    for (std::size_t i = 0; i < n; ++i) {
      if (rd_kafka_ConfigResource_error(resources[i]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        failure = rd_kafka_ConfigResource_error_string(resources[i]);
        continue;
      }
      std::size_t count = 0;
      const rd_kafka_ConfigEntry_t** entries =
          rd_kafka_ConfigResource_configs(resources[i], &count);
      for (std::size_t j = 0; j < count; ++j) {
        const char* value = rd_kafka_ConfigEntry_value(entries[j]);
        out[rd_kafka_ConfigEntry_name(entries[j])] = value != nullptr ? value : "";
      }
    }
  }
  if (ev != nullptr) rd_kafka_event_destroy(ev);
  rd_kafka_queue_destroy(queue);
  rd_kafka_AdminOptions_destroy(opts);
  rd_kafka_ConfigResource_destroy(resource);
  return failure;
}

namespace {

std::vector<KafkaPartitionState> topic_state(const rd_kafka_metadata_t* md,
                                             const std::string& topic) {
  std::vector<KafkaPartitionState> out;
  for (int t = 0; md != nullptr && t < md->topic_cnt; ++t) {
    const rd_kafka_metadata_topic_t& mt = md->topics[t];
    if (topic != mt.topic || mt.err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    for (int p = 0; p < mt.partition_cnt; ++p) {
      const rd_kafka_metadata_partition_t& mp = mt.partitions[p];
      KafkaPartitionState s;
      s.partition = mp.id;
      s.leader = mp.leader;
      s.replicas.assign(mp.replicas, mp.replicas + mp.replica_cnt);
      s.isr.assign(mp.isrs, mp.isrs + mp.isr_cnt);
      out.push_back(std::move(s));
    }
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.partition < b.partition; });
  return out;
}

}  // namespace

std::vector<KafkaPartitionState> KafkaCluster::describe(const std::string& topic) {
  auto md = fetch_metadata(admin_.get(), 5000);
  return topic_state(md.get(), topic);
}

int KafkaCluster::leader_of(const std::string& topic, int partition) {
  for (const auto& p : describe(topic)) {
    if (p.partition == partition) return p.leader;
  }
  return -1;
}

std::string KafkaCluster::partition_problem(const std::string& topic, int min_isr, bool full) {
  auto alive = [this](int id) {
    return id >= 1 && id <= static_cast<int>(nodes_.size()) && running(id);
  };
  // Every running broker must say so: right after a change, their metadata caches differ.
  for (auto& n : nodes_) {
    if (!n->process.running()) continue;
    const std::string who = "broker " + std::to_string(n->id) + ": ";
    if (!n->probe) n->probe.reset(new_handle(broker_address(n->id)));
    MetadataPtr md;
    wait_until(
        [&] {
          md = fetch_metadata(n->probe.get(), 500);
          return md && md->orig_broker_id == n->id;
        },
        std::chrono::seconds(2), std::chrono::milliseconds(10));
    if (!md || md->orig_broker_id != n->id) return who + "no metadata answer";
    auto parts = topic_state(md.get(), topic);
    if (parts.empty()) return who + "no topic " + topic;
    for (const auto& p : parts) {
      const std::string where = who + topic + "[" + std::to_string(p.partition) + "]: ";
      if (!alive(p.leader)) {
        return where + "leader " + std::to_string(p.leader) + " is not running";
      }
      auto in_sync = std::count_if(p.isr.begin(), p.isr.end(), alive);
      if (in_sync < min_isr) return where + std::to_string(in_sync) + " running in-sync replicas";
      if (full && p.isr.size() != p.replicas.size()) {
        return where + "ISR " + std::to_string(p.isr.size()) + " of " +
               std::to_string(p.replicas.size()) + " replicas";
      }
    }
  }
  return {};
}

void KafkaCluster::wait_for_leaders(const std::string& topic, int min_isr,
                                    std::chrono::milliseconds timeout) {
  if (!wait_until([&] { return partition_problem(topic, min_isr, false).empty(); }, timeout,
                  std::chrono::milliseconds(100))) {
    throw std::runtime_error("Kafka: " + partition_problem(topic, min_isr, false));
  }
}

void KafkaCluster::wait_for_full_isr(const std::string& topic, std::chrono::milliseconds timeout) {
  if (!wait_until([&] { return partition_problem(topic, 1, true).empty(); }, timeout,
                  std::chrono::milliseconds(100))) {
    throw std::runtime_error("Kafka: " + partition_problem(topic, 1, true));
  }
}

}  // namespace prpc::testing

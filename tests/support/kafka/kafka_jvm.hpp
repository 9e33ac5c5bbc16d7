// Test support, private to the Kafka fixtures: formatting a KRaft node's storage and starting
// its JVM from the jars kafka-classpath.sh lists.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "process.hpp"

namespace prpc::testing::details {

// A KRaft cluster id: 16 random bytes in unpadded URL-safe base64, never starting with '-'
// (the format tool would read it as an option).
std::string new_kafka_cluster_id();

// The last `bytes` of a file (for error messages).
std::string file_tail(const std::filesystem::path& file, std::size_t bytes = 4000);

// log4j.properties that sends the broker's log (WARN and up, plus `info_loggers` at INFO) to
// `log_file`.
void write_kafka_log4j(const std::filesystem::path& properties,
                       const std::filesystem::path& log_file,
                       const std::vector<std::string>& info_loggers = {});

// `kafka.tools.StorageTool format` for one node; `extra_args` e.g. --add-scram. Does not wait.
ChildProcess start_kafka_format(const std::string& classpath, const std::string& cluster_id,
                                const std::filesystem::path& properties,
                                const std::filesystem::path& log_file,
                                const std::vector<std::string>& extra_args = {});
// Waits for a format started above; throws with its output when it failed.
void finish_kafka_format(ChildProcess& format, const std::filesystem::path& log_file);

// The broker JVM (`kafka.Kafka server.properties`) with a small heap; output to `stdout_log`.
ChildProcess start_kafka_jvm(const std::string& classpath, const std::filesystem::path& dir,
                             const std::filesystem::path& properties,
                             const std::filesystem::path& stdout_log);

}  // namespace prpc::testing::details

// The ABI wrapper: the one exported entry of prpc_broker_kafka.so.
#include "kafka_broker.hpp"
#include "prpc/sdk/plugin.hpp"

PRPC_PLUGIN("broker_kafka", "0.1.0", "Kafka broker (librdkafka)", prpc::kafka::KafkaBroker)

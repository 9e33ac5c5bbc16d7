// The ABI wrapper: the one exported entry of prpc_broker_kafka.so.
#include "prpc/sdk/plugin.hpp"
#include "kafka_broker.hpp"

PRPC_PLUGIN("broker_kafka", "0.1.0", "Kafka broker (librdkafka)", prpc::kafka::KafkaBroker)

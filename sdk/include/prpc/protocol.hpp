// The names of a queue's streams, topics and keys (PROTOCOL.md section 1), derived from the queue
// name alone, for every broker: a "stream" is a Redis stream or a Kafka topic.
#pragma once

#include <string>
#include <string_view>

#include "prpc/message.hpp"

namespace prpc::protocol {

// The fields of a stream entry: the request or reply payload, and the message_id of a reply.
inline constexpr std::string_view kMessageField = "message";
inline constexpr std::string_view kMessageIdField = "message_id";

// Signed messages (docs/security.md): the HMAC-SHA256 of the message's bytes (lowercase hex) and
// the signing key's id travel beside it, as stream entry fields (Redis) or record headers
// (Kafka). A stored result's signature is kept in result_signature_key(its result key).
inline constexpr std::string_view kSignatureField = "signature";
inline constexpr std::string_view kKeyIdField = "key_id";
inline constexpr const char* kSignatureHeader = "prpc-signature";
inline constexpr const char* kKeyIdHeader = "prpc-key-id";

// prpc_{q} (Python flavour) or prpc_raw_{q} (raw JSON): where requests are published.
inline std::string request_stream(Flavour flavour, std::string_view queue) {
  std::string out(flavour == Flavour::kRaw ? "prpc_raw_" : "prpc_");
  out += queue;
  return out;
}

// prpc_feedback_{q} or prpc_feedback_raw_{q}: one stream that holds every reply to the queue,
// keyed by message_id (Kafka, which has no result keys).
inline std::string reply_topic(Flavour flavour, std::string_view queue) {
  std::string out(flavour == Flavour::kRaw ? "prpc_feedback_raw_" : "prpc_feedback_");
  out += queue;
  return out;
}

// prcp_message_feedback_{message_id}, spelled as the seed spells it, or
// prpc_feedback_raw_{q}_{message_id}.
inline std::string result_key(Flavour flavour, std::string_view queue,
                              std::string_view message_id) {
  std::string out;
  if (flavour == Flavour::kRaw) {
    out = "prpc_feedback_raw_";
    out += queue;
    out += '_';
  } else {
    out = "prcp_message_feedback_";
  }
  out += message_id;
  return out;
}

// prpc_feedback_{q}_{message_id}: where the original PRPC's servers stored a Python result and
// its clients poll (GET, then DEL). Our servers also store there for a request without reply_to
// (an original client), and our clients look there for a reply an original server stored.
inline std::string legacy_result_key(std::string_view queue, std::string_view message_id) {
  std::string out("prpc_feedback_");
  out += queue;
  out += '_';
  out += message_id;
  return out;
}

// <result key>:signature, written with the result in one transaction and with its TTL.
inline std::string result_signature_key(std::string_view result_key) {
  std::string out(result_key);
  out += ":signature";
  return out;
}

inline std::string dead_letter_stream(std::string_view queue) {
  std::string out("prpc_dead_");
  out += queue;
  return out;
}

// The Redis broker's liveness hash of a queue: each serving consumer's deadline (Redis time, ms).
// The ':' keeps it apart from prpc_{q} of a queue named "alive_...".
inline std::string liveness_key(std::string_view queue) {
  std::string out("prpc_alive:");
  out += queue;
  return out;
}

// The Redis broker's server hash of a queue: each server's latest announcement (its id, version,
// functions and numbers; Broker::announce_server). The ':' keeps it apart from prpc_{q}.
inline std::string servers_key(std::string_view queue) {
  std::string out("prpc_servers:");
  out += queue;
  return out;
}

// A client's reply address is prpc_feedback_{q}:{client} (a Redis stream per client, a partition
// of the reply topic on Kafka). The ':' keeps them apart from the raw result keys
// (prpc_feedback_raw_...), whatever the queue is called.
inline std::string reply_stream_prefix(std::string_view queue) {
  std::string out("prpc_feedback_");
  out += queue;
  out += ':';
  return out;
}

// A reply_to comes from the request, so from anyone who can write the stream: the server pushes
// only to addresses of this shape and never to another key. The client part may be wrapped in
// braces (a Redis Cluster hash tag that keeps one client's reply streams in one slot).
inline bool is_reply_stream(std::string_view reply_to, std::string_view queue) {
  std::string prefix = reply_stream_prefix(queue);
  if (reply_to.size() <= prefix.size() || reply_to.size() > prefix.size() + 66) return false;
  if (reply_to.substr(0, prefix.size()) != prefix) return false;
  std::string_view client = reply_to.substr(prefix.size());
  if (client.size() > 2 && client.front() == '{' && client.back() == '}') {
    client = client.substr(1, client.size() - 2);
  } else if (client.size() > 64) {
    return false;
  }
  for (char c : client) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

}  // namespace prpc::protocol

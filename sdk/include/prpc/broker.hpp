// The broker interface: how requests reach servers and replies reach clients.
// Implementations are thread-safe: any method may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "prpc/message.hpp"
#include "prpc/status.hpp"

namespace prpc {

// Signatures travel beside a payload: `signature` is the text its sender attached (for instance
// lowercase hex of an HMAC of the payload's exact bytes) and `key_id` names the key. Both are
// empty when the message is unsigned. Brokers store and hand them over as they are.
//
// The view structs below have positional constructors in member order whose trailing members
// may be left out, so code written before a member was added still compiles (without
// -Wmissing-field-initializers, which aggregates would trip).

// A request handed to a server. Views stay valid only during the handler call.
struct DeliveryView {
  Flavour flavour = Flavour::kPython;
  std::string_view queue;
  std::string_view token;  // the broker's id of this delivery
  std::string_view payload;
  std::uint32_t delivery_count = 1;
  std::string_view signature;  // the request's, as published
  std::string_view key_id;

  DeliveryView() = default;
  DeliveryView(Flavour f, std::string_view q, std::string_view tok, std::string_view bytes,
               std::uint32_t count = 1, std::string_view sig = {}, std::string_view key = {})
      : flavour(f),
        queue(q),
        token(tok),
        payload(bytes),
        delivery_count(count),
        signature(sig),
        key_id(key) {}
};

// An owned copy of a delivery, kept by the server while the call runs.
struct Delivery {
  Flavour flavour = Flavour::kPython;
  std::string queue;
  std::string token;
  std::string payload;
  std::uint32_t delivery_count = 1;
  std::string signature;
  std::string key_id;

  Delivery() = default;
  explicit Delivery(const DeliveryView& v)
      : flavour(v.flavour),
        queue(v.queue),
        token(v.token),
        payload(v.payload),
        delivery_count(v.delivery_count),
        signature(v.signature),
        key_id(v.key_id) {}
  DeliveryView view() const {
    return {flavour, queue, token, payload, delivery_count, signature, key_id};
  }
};

struct SubscribeOptions {
  std::string queue;
  std::string group = "prpc_group_consumers";
  std::string consumer;
  bool python = true;  // prpc_{q}
  bool raw = true;     // prpc_raw_{q}
  std::uint32_t max_outstanding = 64;
  std::uint32_t batch_size = 64;
  std::chrono::milliseconds visibility_timeout{30000};
};

struct ReplyView {
  Flavour flavour = Flavour::kPython;
  std::string_view queue;
  std::string_view message_id;
  std::string_view reply_to;  // empty: store only
  std::string_view payload;
  bool push_only = false;      // the result is stored already
  std::string_view signature;  // stored with the result and pushed with the reply
  std::string_view key_id;

  ReplyView() = default;
  ReplyView(Flavour f, std::string_view q, std::string_view id, std::string_view to,
            std::string_view bytes, bool stored = false, std::string_view sig = {},
            std::string_view key = {})
      : flavour(f),
        queue(q),
        message_id(id),
        reply_to(to),
        payload(bytes),
        push_only(stored),
        signature(sig),
        key_id(key) {}
};

// Store and push the reply (if any), dead-letter the request (if a reason is given), then ack.
struct FinishRequest {
  const ReplyView* reply = nullptr;
  std::string_view dead_letter_reason;
};

struct PublishView {
  Flavour flavour = Flavour::kPython;
  std::string_view queue;
  std::string_view message_id;
  std::string_view payload;
  std::string_view signature;  // handed over with the delivery
  std::string_view key_id;

  PublishView() = default;
  PublishView(Flavour f, std::string_view q, std::string_view id, std::string_view bytes,
              std::string_view sig = {}, std::string_view key = {})
      : flavour(f), queue(q), message_id(id), payload(bytes), signature(sig), key_id(key) {}
};

// A reply pushed to this client, with the signature it was finished with. Views stay valid
// only during the handler call.
struct PushedReplyView {
  std::string_view message_id;
  std::string_view payload;
  std::string_view signature;
  std::string_view key_id;
};

// A stored result with the signature it was finished with.
struct StoredResult {
  std::string payload;
  std::string signature;
  std::string key_id;
};

struct QueueStats {
  std::int64_t length = 0;
  std::int64_t pending = 0;
  std::int64_t consumers = 0;
  std::int64_t dead_letters = 0;
};

struct DeadLetter {
  std::string id;
  Flavour flavour = Flavour::kPython;
  std::string reason;
  std::string payload;
};

// One entry of list_servers().
struct ServerRecord {
  std::string id;
  bool alive = true;
  std::chrono::milliseconds age{0};  // since the last announcement
  std::string info_json;             // a JSON object; empty means {}
};

// The JSON array list_servers() returns, in the order given. Ids are written as JSON strings;
// info_json verbatim (the broker accepted only JSON objects).
inline std::string servers_json(std::span<const ServerRecord> servers) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "[";
  for (const ServerRecord& s : servers) {
    if (out.size() > 1) out += ", ";
    out += "{\"id\": \"";
    for (char c : s.id) {
      auto u = static_cast<unsigned char>(c);
      if (c == '"' || c == '\\') {
        out += '\\';
        out += c;
      } else if (u < 0x20) {
        out += "\\u00";
        out += kHex[u >> 4];
        out += kHex[u & 0xF];
      } else {
        out += c;
      }
    }
    out += "\", \"alive\": ";
    out += s.alive ? "true" : "false";
    out += ", \"age_ms\": ";
    out += std::to_string(s.age.count() < 0 ? 0 : s.age.count());
    out += ", \"info\": ";
    out += s.info_json.empty() ? std::string_view("{}") : std::string_view(s.info_json);
    out += '}';
  }
  out += ']';
  return out;
}

using DeliveryHandler = std::function<void(std::span<const DeliveryView>)>;
using DoneCallback = std::function<void(Status)>;
// A stored result, std::nullopt when there is none.
using LookupCallback = std::function<void(Result<std::optional<std::string>>)>;
using ReplyHandler = std::function<void(std::string_view message_id, std::string_view payload)>;
using PushedReplyHandler = std::function<void(const PushedReplyView&)>;
// A stored result with its signature, std::nullopt when there is none.
using StoredResultCallback = std::function<void(Result<std::optional<StoredResult>>)>;

class Broker {
 public:
  virtual ~Broker() = default;

  virtual Status connect() = 0;

  // Server side. The handler is called from the broker's thread until unsubscribe() returns;
  // at most options.max_outstanding deliveries are unfinished at any time.
  virtual Status subscribe(const SubscribeOptions& options, DeliveryHandler handler) = 0;
  virtual void unsubscribe() = 0;
  virtual void finish(const DeliveryView& delivery, const FinishRequest& what,
                      DoneCallback done) = 0;
  virtual void touch(const DeliveryView& delivery) = 0;
  virtual void lookup_result(Flavour flavour, std::string_view queue, std::string_view message_id,
                             LookupCallback done) = 0;

  // Client side.
  virtual void publish(const PublishView& message, DoneCallback done) = 0;
  // Starts the reply listener for `queue` (once per queue and instance) and returns the
  // reply_to address that requests to that queue carry. A second call for the same queue returns
  // the same address, and replies then go to the newest handler.
  virtual Result<std::string> open_replies(std::string_view queue, ReplyHandler on_reply) = 0;

  // Operations.
  virtual Result<QueueStats> queue_stats(std::string_view queue) = 0;
  virtual Result<std::vector<DeadLetter>> dead_letters(std::string_view queue,
                                                       std::size_t max_count) = 0;
  // Puts the dead letters of `queue` with these ids (all of them when `ids` is empty) back into
  // the request queue of their flavour, forgets the error result stored under their message_id
  // (otherwise a server would answer the requeued request from it) and removes them from the
  // dead letters. Returns how many were requeued; unknown ids are skipped. A broker that cannot
  // (a log like Kafka's cannot delete an entry) keeps this default.
  virtual Result<std::size_t> requeue_dead_letters(std::string_view /*queue*/,
                                                   std::span<const std::string> /*ids*/) {
    return Status(StatusCode::kUnimplemented, "this broker cannot requeue dead letters");
  }

  // ABI 1.2. The defaults serve brokers that do not carry signatures or know servers.

  // open_replies() whose handler also receives each reply's signature. It shares the reply
  // address and the "newest handler wins" rule with open_replies(). Default: open_replies(),
  // with empty signatures.
  virtual Result<std::string> open_replies_signed(std::string_view queue,
                                                  PushedReplyHandler on_reply) {
    return open_replies(
        queue, [on_reply = std::move(on_reply)](std::string_view id, std::string_view payload) {
          on_reply(PushedReplyView{id, payload, {}, {}});
        });
  }
  // lookup_result() with the result's signature. Default: lookup_result(), with an empty one.
  virtual void lookup_result_signed(Flavour flavour, std::string_view queue,
                                    std::string_view message_id, StoredResultCallback done) {
    lookup_result(flavour, queue, message_id,
                  [done = std::move(done)](Result<std::optional<std::string>> r) {
                    if (!r.is_ok()) {
                      done(r.status());
                    } else if (!r->has_value()) {
                      done(std::optional<StoredResult>());
                    } else {
                      done(std::optional<StoredResult>(StoredResult{std::move(**r), {}, {}}));
                    }
                  });
  }
  // Records that server `server_id` (the consumer name it subscribes with) serving `queue` is
  // alive, with `info_json` (a JSON object; empty means {}), until `ttl` passes without another
  // announcement. A server announces itself about once a second.
  virtual void announce_server(std::string_view /*queue*/, std::string_view /*server_id*/,
                               std::string_view /*info_json*/, std::chrono::milliseconds /*ttl*/,
                               DoneCallback done) {
    done(Status(StatusCode::kUnimplemented, "this broker does not keep a list of servers"));
  }
  // The servers announced on `queue` as one JSON array (write it with servers_json()):
  // [{"id": "...", "alive": true, "age_ms": 250, "info": {...}}], age_ms counting from the last
  // announcement; servers whose announcement expired recently are listed with "alive": false
  // when the broker can tell.
  virtual Result<std::string> list_servers(std::string_view /*queue*/) {
    return Status(StatusCode::kUnimplemented, "this broker does not keep a list of servers");
  }
};

}  // namespace prpc

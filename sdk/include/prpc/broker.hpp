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

// A request handed to a server. Views stay valid only during the handler call.
struct DeliveryView {
  Flavour flavour = Flavour::kPython;
  std::string_view queue;
  std::string_view token;  // the broker's id of this delivery
  std::string_view payload;
  std::uint32_t delivery_count = 1;
};

// An owned copy of a delivery, kept by the server while the call runs.
struct Delivery {
  Flavour flavour = Flavour::kPython;
  std::string queue;
  std::string token;
  std::string payload;
  std::uint32_t delivery_count = 1;

  Delivery() = default;
  explicit Delivery(const DeliveryView& v)
      : flavour(v.flavour),
        queue(v.queue),
        token(v.token),
        payload(v.payload),
        delivery_count(v.delivery_count) {}
  DeliveryView view() const { return {flavour, queue, token, payload, delivery_count}; }
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
  bool push_only = false;     // the result is stored already
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

using DeliveryHandler = std::function<void(std::span<const DeliveryView>)>;
using DoneCallback = std::function<void(Status)>;
// A stored result, std::nullopt when there is none.
using LookupCallback = std::function<void(Result<std::optional<std::string>>)>;
using ReplyHandler = std::function<void(std::string_view message_id, std::string_view payload)>;

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
};

}  // namespace prpc

// The client engine: publish a request, wait for the pushed reply (one reply listener per
// client, no polling), enforce a per-call timeout.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "prpc/broker.hpp"
#include "prpc/codec.hpp"
#include "prpc/message.hpp"
#include "prpc/signing.hpp"
#include "prpc/status.hpp"

namespace prpc {

struct ClientGate;

struct ClientOptions {
  std::string queue = "task_prpc";
  Flavour flavour = Flavour::kPython;
  // A call without a pushed reply for this long is looked up where its result is stored, then
  // again at this interval: servers that do not push (the original PRPC's) are still heard,
  // about as fast as their own clients polled. 0 turns it off (a broker whose lookup is costly).
  std::chrono::milliseconds stored_reply_poll{0};
  // With a key: requests are signed, and a reply that is not signed with an accepted key fails
  // its call (kDecode) instead of being taken for the answer.
  SigningOptions signing{};
};

class Client {
 public:
  using ReplyCallback = std::function<void(Result<Message>)>;

  Client(ClientOptions options, std::shared_ptr<Broker> broker, std::shared_ptr<Codec> codec);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connects and opens the reply listener.
  Status start();

  // Sends `request` (message_id, date_create_message and reply_to are filled in when empty) and
  // calls `done` exactly once: with the reply (which may carry a remote failure in
  // exception_info), or with kTimeout when `timeout` (> 0) passes first, or with the error that
  // kept the request from being sent. Returns the message_id.
  std::string call(Message request, std::chrono::milliseconds timeout, ReplyCallback done);
  Result<Message> call_sync(Message request, std::chrono::milliseconds timeout);

  // Forgets a pending call; its callback gets kCancelled. False when it is not pending.
  bool cancel(std::string_view message_id);

  // Reads a stored result (the broker's string key), for a reply this client did not receive.
  void fetch(std::string_view message_id, std::function<void(Result<std::optional<Message>>)> done);

  std::size_t pending() const;
  // Why calls may go unanswered, when the client has seen a reason (e.g. replies from servers
  // of the original PRPC, which do not address them); empty otherwise.
  std::string diagnosis() const;
  const std::string& reply_to() const;
  const Codec& codec() const;
  const ClientOptions& options() const;

 public:
  class Impl;

 private:
  std::shared_ptr<ClientGate> gate_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace prpc

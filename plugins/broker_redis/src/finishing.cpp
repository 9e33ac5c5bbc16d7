// Finishing a request: store the result, push the reply, dead-letter, acknowledge. The common
// case is one MULTI/EXEC; a dead letter goes through the finish script.
#include "broker_impl.hpp"
#include "prpc/protocol.hpp"

namespace prpc::redis {

using namespace std::chrono_literals;

namespace {

// A dead letter's fields: the reason, flavour and the original payload (capped at `max_payload`
// bytes when it is positive), and where it came from. Owns the text its views point into.
struct DeadLetterFields {
  std::string reason, count, size;
  std::string_view original;
  bool truncated = false;

  DeadLetterFields(const DeliveryView& d, std::string_view why, const std::string& note,
                   std::int64_t max_payload)
      : reason(why),
        count(std::to_string(d.delivery_count)),
        size(std::to_string(d.payload.size())),
        original(d.payload) {
    if (!note.empty()) reason += " (" + note + ")";
    if (max_payload > 0 && original.size() > static_cast<std::size_t>(max_payload)) {
      original = original.substr(0, static_cast<std::size_t>(max_payload));
      truncated = true;
    }
  }

  void append_to(std::vector<std::string_view>& args, const DeliveryView& d,
                 std::string_view stream, std::string_view id, std::string_view message_id) const {
    args.insert(args.end(),
                {"reason", reason, "flavour", flavour_name(d.flavour), "stream", stream, "id", id,
                 "message_id", message_id, "delivery_count", count, "payload_bytes", size,
                 "truncated", truncated ? "1" : "0", "payload", original});
    // A requeued request is checked again as it was sent.
    if (!d.signature.empty()) {
      args.insert(args.end(),
                  {protocol::kSignatureField, d.signature, protocol::kKeyIdField, d.key_id});
    }
  }
};

}  // namespace

void RedisBroker::Impl::finish(const DeliveryView& d, const FinishRequest& what,
                               DoneCallback done) {
  auto op = std::make_shared<FinishOp>();
  op->key = delivery_key(d.flavour, d.token);
  op->done = std::move(done);
  std::string group;
  {
    std::lock_guard lock(names_mutex_);
    group = group_;
  }
  std::string note = take_note(op->key);
  if (closed_ || group.empty()) {
    Status why = closed_ ? Status(StatusCode::kCancelled, "the broker is closed")
                         : Status(StatusCode::kFailedPrecondition,
                                  "finish() on a broker instance that never subscribed");
    asio::post(io_, [this, op, why] { complete(op, why); });
    return;
  }
  EntryRef entry = entry_of(d.flavour, d.queue, d.token);
  const std::string& stream = entry.stream;
  std::string result_key, legacy_key, reply_stream, dead_stream;
  std::string_view payload, signature, key_id;
  bool store = false, push = false, dead = !what.dead_letter_reason.empty();
  if (what.reply != nullptr && !what.reply->message_id.empty()) {
    const ReplyView& r = *what.reply;
    op->message_id = std::string(r.message_id);
    payload = r.payload;
    signature = r.signature;
    key_id = r.key_id;
    if (!r.push_only) {
      store = true;
      result_key = protocol::result_key(r.flavour, r.queue, r.message_id);
      // A Python request without reply_to comes from an original PRPC client, which polls
      // its own key.
      if (r.flavour == Flavour::kPython && r.reply_to.empty()) {
        legacy_key = protocol::legacy_result_key(r.queue, r.message_id);
      }
    }
    if (!r.reply_to.empty()) {
      if (protocol::is_reply_stream(r.reply_to, d.queue)) {
        push = true;
        reply_stream = std::string(r.reply_to);
      } else {
        log_.debug("not pushing to reply_to '" + std::string(r.reply_to.substr(0, 80)) +
                   "': not a reply stream of queue '" + std::string(d.queue) + "'");
      }
    }
  }
  std::string result_ttl = ms_arg(settings_.result_ttl);
  if (!legacy_key.empty()) restore_legacy_later(legacy_key, std::string(payload));
  if (settings_.url.cluster()) {
    // A cluster refuses a transaction or script over keys of several slots: the writes go to
    // their nodes one by one, and the ack follows once every one succeeded. A crash between
    // the two runs the request again (at-least-once), as a lost ack would.
    std::vector<Command> writes;
    int push_at = -1;
    if (store) {
      writes.push_back(Command::make({"SET", result_key, payload, "PX", result_ttl}));
      if (!signature.empty()) {
        writes.push_back(Command::make(
            {"SET", protocol::result_signature_key(result_key), signature, "PX", result_ttl}));
      }
    }
    if (!legacy_key.empty()) {
      writes.push_back(Command::make({"SET", legacy_key, payload, "PX", result_ttl}));
    }
    if (push) {
      std::string cap = std::to_string(settings_.reply_max_len);
      std::vector<std::string_view> args{"XADD", reply_stream};
      if (settings_.reply_max_len > 0) args.insert(args.end(), {"MAXLEN", "~", cap});
      args.insert(args.end(), {"*", protocol::kMessageIdField, op->message_id,
                               protocol::kMessageField, payload});
      if (!signature.empty()) {
        args.insert(args.end(),
                    {protocol::kSignatureField, signature, protocol::kKeyIdField, key_id});
      }
      push_at = static_cast<int>(writes.size());
      writes.push_back(Command::make(args));
      writes.push_back(Command::make({"PEXPIRE", reply_stream, ms_arg(settings_.reply_ttl)}));
    }
    if (dead) {
      DeadLetterFields fields(d, what.dead_letter_reason, note, settings_.dead_letter_max_payload);
      std::string cap = std::to_string(settings_.dead_letter_max_len);
      std::string dead_stream_name = protocol::dead_letter_stream(d.queue);
      std::vector<std::string_view> args{"XADD", dead_stream_name};
      if (settings_.dead_letter_max_len > 0) args.insert(args.end(), {"MAXLEN", "~", cap});
      args.emplace_back("*");
      fields.append_to(args, d, stream, entry.id, op->message_id);
      writes.push_back(Command::make(args));
    }
    Command ack = Command::make({"XACK", stream, group, entry.id});
    if (in_io_thread() || cmd_->ready()) {
      finish_split(op, std::move(writes), push_at, std::move(ack));
    } else {
      asio::post(io_,
                 [this, op, writes = std::move(writes), push_at, ack = std::move(ack)]() mutable {
                   finish_split(op, std::move(writes), push_at, std::move(ack));
                 });
    }
    return;
  }
  if (!dead) {
    finish_in_transaction(op, stream, group, entry.id, store ? result_key : std::string(),
                          legacy_key, push ? reply_stream : std::string(), payload, signature,
                          key_id, result_ttl);
    return;
  }
  if (!legacy_key.empty()) {
    // Before the script on the same connection, so it is stored by the time the ack is.
    send_now(Command::make({"SET", legacy_key, payload, "PX", result_ttl}),
             [](const Status&, const ReplyPtr&) {});
  }
  dead_stream = protocol::dead_letter_stream(d.queue);
  std::string reply_ttl = ms_arg(settings_.reply_ttl);
  std::string reply_cap = std::to_string(settings_.reply_max_len);
  std::string dead_cap = std::to_string(settings_.dead_letter_max_len);
  // Keys the script does not touch are still checked against the user's ACL key patterns: the
  // request stream stands in for them (an empty name would match no pattern).
  std::string signature_key = store ? protocol::result_signature_key(result_key) : stream;
  std::vector<std::string_view> args{"EVALSHA",
                                     scripts::shas().finish,
                                     "5",
                                     stream,
                                     store ? result_key : stream,
                                     push ? reply_stream : stream,
                                     dead_stream,
                                     signature_key,
                                     group,
                                     entry.id,
                                     store ? "1" : "0",
                                     push ? "1" : "0",
                                     dead ? "1" : "0",
                                     payload,
                                     result_ttl,
                                     op->message_id,
                                     reply_ttl,
                                     reply_cap,
                                     dead_cap,
                                     signature,
                                     key_id};
  // The dead letter's fields, after the script's arguments.
  std::optional<DeadLetterFields> fields;
  if (dead) {
    fields.emplace(d, what.dead_letter_reason, note, settings_.dead_letter_max_payload);
    fields->append_to(args, d, stream, entry.id, op->message_id);
  }
  send_now(Command::make(args),
           [this, op](const Status& s, ReplyPtr r) { on_finished(op, s, r.get()); });
}

// The common finish, without a dead letter, as one MULTI/EXEC (cheaper for Redis than a
// script): SET, push, XACK. A command Redis refuses to queue (NOPERM, OOM, READONLY) aborts the
// whole transaction, so the ack never runs without the store; SET has no other way to fail.
// Only the push may fail inside EXEC (a foreign key of another type under the reply address).
void RedisBroker::Impl::finish_in_transaction(
    const std::shared_ptr<FinishOp>& op, const std::string& stream, const std::string& group,
    std::string_view id, const std::string& result_key, const std::string& legacy_key,
    const std::string& reply_stream, std::string_view payload, std::string_view signature,
    std::string_view key_id, const std::string& result_ttl) {
  std::vector<Command> commands;
  commands.push_back(Command::make({"MULTI"}));
  int store_at = -1, push_at = -1, index = 0;
  if (!result_key.empty()) {
    commands.push_back(Command::make({"SET", result_key, payload, "PX", result_ttl}));
    store_at = index++;
    if (!signature.empty()) {
      commands.push_back(Command::make(
          {"SET", protocol::result_signature_key(result_key), signature, "PX", result_ttl}));
      ++index;
    }
  }
  if (!legacy_key.empty()) {
    commands.push_back(Command::make({"SET", legacy_key, payload, "PX", result_ttl}));
    ++index;
  }
  if (!reply_stream.empty()) {
    std::string cap = std::to_string(settings_.reply_max_len);
    std::vector<std::string_view> args{"XADD", reply_stream};
    if (settings_.reply_max_len > 0) args.insert(args.end(), {"MAXLEN", "~", cap});
    args.insert(args.end(),
                {"*", protocol::kMessageIdField, op->message_id, protocol::kMessageField, payload});
    if (!signature.empty()) {
      args.insert(args.end(),
                  {protocol::kSignatureField, signature, protocol::kKeyIdField, key_id});
    }
    commands.push_back(Command::make(args));
    push_at = index++;
    commands.push_back(Command::make({"PEXPIRE", reply_stream, ms_arg(settings_.reply_ttl)}));
    ++index;
  }
  commands.push_back(Command::make({"XACK", stream, group, id}));
  commands.push_back(Command::make({"EXEC"}));
  send_transaction(op, std::move(commands), store_at, push_at);
}

// Any thread. The commands are kept (they share their bytes) for a retry.
void RedisBroker::Impl::send_transaction(const std::shared_ptr<FinishOp>& op,
                                         std::vector<Command> commands, int store_at, int push_at) {
  std::weak_ptr<FinishOp> weak = op;
  op->again = [this, weak, commands, store_at, push_at] {
    if (auto live = weak.lock()) send_transaction(live, commands, store_at, push_at);
  };
  op->refused = Status::ok();
  // Each command's own answer is QUEUED, or why it was refused; keep the first refusal, which
  // says more than EXEC's EXECABORT.
  auto ignore = [op](const Status& s, ReplyPtr r) {
    if (s.is_ok() && is_error(r.get()) && op->refused.is_ok()) {
      op->refused = error_status(r.get(), "finishing the request");
    }
  };
  std::vector<Request> batch;
  batch.reserve(commands.size());
  for (std::size_t i = 0; i + 1 < commands.size(); ++i) {
    batch.push_back(Request{std::move(commands[i]), ignore, {}});
  }
  batch.push_back(Request{std::move(commands.back()),
                          [this, op, store_at, push_at](const Status& s, ReplyPtr r) {
                            on_transaction(op, s, r.get(), store_at, push_at);
                          },
                          {}});
  if (cmd_->ready() || in_io_thread()) {
    if (in_io_thread()) command_link();
    cmd_->send_batch(std::move(batch));
    return;
  }
  auto shared = std::make_shared<std::vector<Request>>(std::move(batch));
  asio::post(io_, [this, shared] { command_link()->send_batch(std::move(*shared)); });
}

// Any thread while the command connection is ready; the io thread otherwise.
void RedisBroker::Impl::finish_split(const std::shared_ptr<FinishOp>& op,
                                     std::vector<Command> writes, int push_at, Command ack) {
  std::weak_ptr<FinishOp> weak = op;
  op->again = [this, weak, writes, push_at, ack] {
    if (auto live = weak.lock()) finish_split(live, writes, push_at, ack);
  };
  struct Progress {
    std::size_t left = 0;
    Status failed;
    Command ack;
  };
  auto progress = std::make_shared<Progress>();
  progress->left = writes.size() + 1;
  progress->ack = std::move(ack);
  auto step = [this, op, progress] {
    if (--progress->left > 0) return;
    if (!progress->failed.is_ok()) {
      complete(op, progress->failed);  // not acknowledged: the request comes back
      return;
    }
    cmd_->send(std::move(progress->ack), [this, op](const Status& s, ReplyPtr r) {
      complete(op, expect_ok(s, r.get(), "acknowledging the request"));
    });
  };
  auto link = in_io_thread() ? command_link() : cmd_;
  for (std::size_t i = 0; i < writes.size(); ++i) {
    bool is_push = static_cast<int>(i) == push_at;
    link->send(std::move(writes[i]),
               [this, op, progress, step, is_push](const Status& s, ReplyPtr r) {
                 Status e = expect_ok(s, r.get(), "finishing the request");
                 if (!e.is_ok() && is_push && s.is_ok()) {
                   // Only the push may fail for good (a foreign key under the reply address): the
                   // stored result stays the source of truth.
                   log_.warn("pushing the reply of " + op->message_id + ": " + e.message());
                 } else if (!e.is_ok() && progress->failed.is_ok()) {
                   progress->failed = e;
                 }
                 step();
               });
  }
  step();  // the writes' own count started one higher, so an empty list acks at once
}

void RedisBroker::Impl::on_transaction(const std::shared_ptr<FinishOp>& op, const Status& s,
                                       const redisReply* r, int store_at, int push_at) {
  details::FinishOutcome out = details::read_transaction(s, r, op->refused, store_at, push_at);
  if (out.push_error) log_.warn("pushing the reply of " + op->message_id + ": " + *out.push_error);
  complete(op, out.status);
}

// io thread: the finish script answered (or the connection failed under it).
void RedisBroker::Impl::on_finished(const std::shared_ptr<FinishOp>& op, const Status& s,
                                    const redisReply* r) {
  details::FinishOutcome out = details::read_finish_script(s, r);
  if (starts_with(r, "NOSCRIPT")) reload_scripts(cmd_);
  if (out.push_error)
    log_.warn("pushing the reply of " + op->message_id + " failed: " + *out.push_error);
  // Not acknowledged on failure: the request comes back for another try.
  complete(op, out.status);
}

void RedisBroker::Impl::complete(const std::shared_ptr<FinishOp>& op, const Status& s) {
  // The connection failed under the finish (a failover, a restart): it is sent again, and waits
  // for the next connection. Repeating it stores the same result and acknowledges again; the
  // reply may be pushed twice (clients keep the first per message_id).
  constexpr int kFinishAttempts = 3;
  if (s.code() == StatusCode::kUnavailable && op->again && op->attempts + 1 < kFinishAttempts &&
      !closed_) {
    ++op->attempts;
    log_.debug("finishing " + op->message_id + " again: " + s.message());
    auto again = op->again;
    again();
    return;
  }
  op->again = nullptr;
  handed_.erase(op->key);
  pump();
  auto done = std::move(op->done);
  if (done) done(s);
}

void RedisBroker::Impl::put_note(const std::string& key, std::string note) {
  std::lock_guard lock(notes_mutex_);
  notes_[key] = std::move(note);
}

std::string RedisBroker::Impl::take_note(const std::string& key) {
  std::lock_guard lock(notes_mutex_);
  if (notes_.empty()) return {};
  auto it = notes_.find(key);
  if (it == notes_.end()) return {};
  std::string note = std::move(it->second);
  notes_.erase(it);
  return note;
}

// An original PRPC client polls its key with GET, then an unconditional DEL: a result stored
// between the two is deleted unread, and that caller would wait for ever. Once its poll interval
// (1 s) has passed, the result is stored again if the key is gone (NX), for a few minutes: a
// caller that did read it never looks again, one that lost it finds it at its next poll.
void RedisBroker::Impl::restore_legacy_later(std::string key, std::string payload) {
  asio::post(io_, [this, key = std::move(key), payload = std::move(payload)]() mutable {
    auto timer = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(1500));
    timer->async_wait([this, timer, key = std::move(key),
                       payload = std::move(payload)](const boost::system::error_code& ec) {
      if (ec || closed_) return;
      send_now(Command::make({"SET", key, payload, "PX", "300000", "NX"}),
               [](const Status&, const ReplyPtr&) {});
    });
  });
}

}  // namespace prpc::redis

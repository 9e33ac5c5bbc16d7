// The client side: publishing requests, the listener of this client's reply streams, and
// stored results.
#include "broker_impl.hpp"
#include "prpc/protocol.hpp"

namespace prpc::redis {

using namespace std::chrono_literals;

namespace {
constexpr std::size_t kReplyReadCount = 512;
}  // namespace

void RedisBroker::Impl::publish(const PublishView& m, DoneCallback done) {
  std::string stream = protocol::request_stream(m.flavour, m.queue);
  if (settings_.url.shards > 1) {
    // Round robin over the queue's shards (servers read them all).
    auto shard = static_cast<int>(next_shard_.fetch_add(1, std::memory_order_relaxed) %
                                  static_cast<std::uint32_t>(settings_.url.shards));
    stream = details::shard_stream(stream, shard, settings_.url.shards);
  }
  std::string max_len = std::to_string(settings_.stream_max_len);
  std::vector<std::string_view> args{"XADD", stream};
  if (settings_.stream_max_len > 0) args.insert(args.end(), {"MAXLEN", "~", max_len});
  args.insert(args.end(), {"*", protocol::kMessageField, m.payload});
  if (!m.signature.empty()) {
    args.insert(args.end(), {protocol::kSignatureField, m.signature});
    if (!m.key_id.empty()) args.insert(args.end(), {protocol::kKeyIdField, m.key_id});
  }
  Command xadd = Command::make(args);
  send_now(std::move(xadd), [done = std::move(done)](const Status& s, ReplyPtr r) {
    if (!s.is_ok()) {
      // Nobody can tell whether a request lost in a broken connection was queued.
      done(Status(s.code() == StatusCode::kCancelled ? s.code() : StatusCode::kUnavailable,
                  "the request may not have reached Redis: " + s.message()));
    } else if (is_error(r.get())) {
      done(error_status(r.get(), "Redis refused the request"));
    } else {
      done(Status::ok());
    }
  });
}

Result<std::string> RedisBroker::Impl::open_replies_signed(std::string_view queue,
                                                           PushedReplyHandler on_reply) {
  if (queue.empty()) return Status(StatusCode::kInvalidArgument, "the queue is empty");
  if (!on_reply) return Status(StatusCode::kInvalidArgument, "no reply handler");
  PRPC_RETURN_IF_ERROR(connect());
  std::string q(queue);
  return run_sync<std::string>(
      [this, q, handler = std::make_shared<PushedReplyHandler>(std::move(on_reply))](
          Complete<std::string> complete) mutable {
        if (closed_) {
          complete(Status(StatusCode::kCancelled, "the broker is closed"));
          return;
        }
        for (ReplyStream& r : replies_) {
          if (r.queue == q) {
            r.handler = std::move(handler);
            complete(r.key);
            return;
          }
        }
        ReplyStream r;
        r.queue = q;
        // In a cluster, one XREAD reads every reply stream of this client: the client id as a
        // hash tag puts them in one slot.
        r.key = protocol::reply_stream_prefix(q) +
                (settings_.url.cluster() ? "{" + client_id_ + "}" : client_id_);
        r.handler = std::move(handler);
        replies_.push_back(std::move(r));
        std::string key = replies_.back().key;
        if (!listen_) {
          listen_ = make_link("replies");
          listen_->on_ready([this] {
            listening_ = false;
            listen_next();
          });
          listen_->start();
          schedule_tick();
        } else if (listening_ && listen_->client_id() >= 0) {
          // Wake the blocked XREAD so that it comes back listening to the new stream too.
          unblock(*listen_);
        } else {
          listen_next();
        }
        complete(key);
      },
      settings_.command_timeout);
}

void RedisBroker::Impl::lookup_result_signed(Flavour flavour, std::string_view queue,
                                             std::string_view message_id,
                                             StoredResultCallback done) {
  std::string legacy;
  if (flavour == Flavour::kPython) legacy = protocol::legacy_result_key(queue, message_id);
  get_stored(protocol::result_key(flavour, queue, message_id), std::move(legacy), std::move(done));
}

// GETs `key` and its signature (result_signature_key) in one round trip; when `key` holds
// nothing, `fallback` (if any): where an original PRPC server stored the result of a request it
// served, unsigned.
void RedisBroker::Impl::get_stored(const std::string& key, std::string fallback,
                                   StoredResultCallback done) {
  // The two keys may live on different nodes of a cluster: whichever answer comes last decides.
  struct Lookup {
    Result<std::optional<StoredResult>> found{std::optional<StoredResult>()};
    std::optional<std::string> signature;
    int left = 2;
    std::string fallback;
    StoredResultCallback done;
  };
  auto lookup = std::make_shared<Lookup>();
  lookup->fallback = std::move(fallback);
  lookup->done = std::move(done);
  auto finish = [this, lookup] {
    if (--lookup->left > 0) return;
    if (lookup->found.is_ok() && !lookup->found->has_value() && !lookup->fallback.empty()) {
      get_stored(lookup->fallback, std::string(), std::move(lookup->done));
      return;
    }
    // A missing or unreadable signature leaves the result unsigned for the verifier.
    if (lookup->found.is_ok() && lookup->found->has_value() && lookup->signature) {
      (*lookup->found)->signature = std::move(*lookup->signature);
    }
    lookup->done(std::move(lookup->found));
  };
  send_now(Command::make({"GET", key}), [lookup, finish](const Status& s, ReplyPtr r) {
    if (!s.is_ok()) {
      lookup->found = s.with_context("reading the stored result");
    } else if (is_error(r.get())) {
      lookup->found = error_status(r.get(), "reading the stored result");
    } else if (!is_nil(r.get())) {
      lookup->found = std::optional<StoredResult>(StoredResult{std::string(text(r.get())), {}, {}});
    }
    finish();
  });
  send_now(Command::make({"GET", protocol::result_signature_key(key)}),
           [lookup, finish](const Status& s, ReplyPtr r) {
             if (s.is_ok() && !is_nil(r.get()) && !is_error(r.get())) {
               lookup->signature = std::string(text(r.get()));
             }
             finish();
           });
}

void RedisBroker::Impl::listen_next() {
  if (closed_ || listening_ || !listen_ || !listen_->ready() || replies_.empty()) return;
  std::string count = std::to_string(kReplyReadCount);
  std::string block = ms_arg(settings_.block);
  std::vector<std::string_view> args{"XREAD", "COUNT", count, "BLOCK", block, "STREAMS"};
  for (const ReplyStream& r : replies_) args.push_back(r.key);
  for (const ReplyStream& r : replies_) args.push_back(r.last_id);
  listening_ = true;
  listen_->send(
      Command::make(args), [this](const Status& s, ReplyPtr r) { on_replies(s, std::move(r)); },
      settings_.block);
}

void RedisBroker::Impl::on_replies(const Status& s, ReplyPtr r) {
  listening_ = false;
  if (closed_ || !s.is_ok()) return;  // on_ready of the reconnected link resumes
  if (is_error(r.get())) {
    log_.error(error_status(r.get(), "reading replies").message());
    listen_retry_timer_.expires_after(settings_.reconnect_max);
    listen_retry_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) listen_next();
    });
    return;
  }
  for (const details::StreamBatch& batch : details::read_streams(r.get())) {
    if (closed_) return;
    auto target = std::find_if(replies_.begin(), replies_.end(),
                               [&](const ReplyStream& rs) { return rs.key == batch.stream; });
    if (target == replies_.end()) continue;
    for (const details::StreamEntry& e : batch.entries) {
      target->last_id = std::string(e.id);
      if (e.deleted) continue;
      auto handler = target->handler;  // a handler may replace itself
      try {
        (*handler)(PushedReplyView{e.message_id, e.message.value_or(std::string_view()),
                                   e.signature, e.key_id});
      } catch (...) {
        log_.error("the reply handler threw");
      }
      if (closed_) return;
    }
  }
  listen_next();
}

// Replies already read are dropped from this client's stream; the rest expire with it.
void RedisBroker::Impl::trim_replies() {
  for (ReplyStream& r : replies_) {
    if (r.last_id == r.trimmed_to) continue;
    r.trimmed_to = r.last_id;
    command_link()->send(Command::make({"XTRIM", r.key, "MINID", r.last_id}),
                         [](const Status&, ReplyPtr) {});
  }
}

}  // namespace prpc::redis

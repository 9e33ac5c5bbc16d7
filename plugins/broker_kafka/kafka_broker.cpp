#include "kafka_broker.hpp"

#include <stdexcept>
#include <thread>

#include "kafka_impl.hpp"
#include "prpc/own_thread.hpp"
#include "prpc/protocol.hpp"

namespace prpc::kafka {

std::string request_topic(std::string_view queue, Flavour flavour) {
  return protocol::request_stream(flavour, queue);
}
std::string reply_topic(std::string_view queue, Flavour flavour) {
  return protocol::reply_topic(flavour, queue);
}
std::string dead_topic(std::string_view queue) { return protocol::dead_letter_stream(queue); }
std::string servers_topic(std::string_view queue) {
  std::string out("prpc-servers-");
  out += queue;
  return out;
}

// ---- KafkaBroker ------------------------------------------------------------------------------

namespace {
Settings settings_or_throw(const sdk::Options& options) {
  auto s = read_settings(options);
  if (!s.is_ok()) throw std::invalid_argument(s.status().message());
  return std::move(s).value();
}
}  // namespace

KafkaBroker::KafkaBroker(const sdk::Context& ctx)
    : impl_(std::make_shared<Impl>(settings_or_throw(ctx.options), ctx.log)) {}

KafkaBroker::KafkaBroker(Settings settings, sdk::Logger log)
    : impl_(std::make_shared<Impl>(std::move(settings), std::move(log))) {}

KafkaBroker::~KafkaBroker() {
  // Released from inside one of our callbacks, it shuts down on a thread of its own.
  bool own = impl_->on_own_thread();
  tear_down(own, [impl = std::move(impl_)]() mutable {
    impl->shutdown();
    impl.reset();
  });
}

Status KafkaBroker::connect() { return impl_->connect(); }
Status KafkaBroker::subscribe(const SubscribeOptions& options, DeliveryHandler handler) {
  return impl_->subscribe(options, std::move(handler));
}
void KafkaBroker::unsubscribe() { impl_->unsubscribe(); }
void KafkaBroker::finish(const DeliveryView& delivery, const FinishRequest& what,
                         DoneCallback done) {
  impl_->finish(delivery, what, std::move(done));
}
void KafkaBroker::touch(const DeliveryView&) {
  // Kafka has no per-record visibility timeout: ownership lasts as long as the group membership,
  // which the consumer thread keeps alive by polling.
}
void KafkaBroker::lookup_result(Flavour flavour, std::string_view queue,
                                std::string_view message_id, LookupCallback done) {
  impl_->lookup_result_signed(flavour, queue, message_id,
                              [done = std::move(done)](Result<std::optional<StoredResult>> r) {
                                if (!r.is_ok()) {
                                  done(r.status());
                                } else if (!r->has_value()) {
                                  done(std::optional<std::string>());
                                } else {
                                  done(std::optional<std::string>(std::move((*r)->payload)));
                                }
                              });
}
void KafkaBroker::lookup_result_signed(Flavour flavour, std::string_view queue,
                                       std::string_view message_id, StoredResultCallback done) {
  impl_->lookup_result_signed(flavour, queue, message_id, std::move(done));
}
void KafkaBroker::publish(const PublishView& message, DoneCallback done) {
  Status s = impl_->require_connected();
  if (!s.is_ok()) {
    done(s);
    return;
  }
  impl_->publish(message, std::move(done));
}
Result<std::string> KafkaBroker::open_replies(std::string_view queue, ReplyHandler on_reply) {
  PRPC_RETURN_IF_ERROR(impl_->require_connected());
  return impl_->open_replies_signed(queue,
                                    [on_reply = std::move(on_reply)](const PushedReplyView& r) {
                                      on_reply(r.message_id, r.payload);
                                    });
}
Result<std::string> KafkaBroker::open_replies_signed(std::string_view queue,
                                                     PushedReplyHandler on_reply) {
  PRPC_RETURN_IF_ERROR(impl_->require_connected());
  return impl_->open_replies_signed(queue, std::move(on_reply));
}
Result<QueueStats> KafkaBroker::queue_stats(std::string_view queue) {
  return impl_->queue_stats(queue);
}
Result<std::vector<DeadLetter>> KafkaBroker::dead_letters(std::string_view queue,
                                                          std::size_t max_count) {
  return impl_->dead_letters(queue, max_count);
}
void KafkaBroker::announce_server(std::string_view queue, std::string_view server_id,
                                  std::string_view info_json, std::chrono::milliseconds ttl,
                                  DoneCallback done) {
  impl_->announce_server(queue, server_id, info_json, ttl, std::move(done));
}
Result<std::string> KafkaBroker::list_servers(std::string_view queue) {
  return impl_->list_servers(queue);
}

}  // namespace prpc::kafka

// The queue's list of servers: each serving engine announces itself about once a second in the
// hash prpc_servers:{q} (one field per server, stamped with Redis's clock); list_servers reads
// it back with ages measured on that same clock.
#include <charconv>

#include "broker_impl.hpp"
#include "prpc/json.hpp"
#include "prpc/protocol.hpp"

namespace prpc::redis {

using namespace std::chrono_literals;

namespace {

std::optional<std::int64_t> number_at(std::string_view text, std::size_t& at) {
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data() + at, text.data() + text.size(), v);
  if (ec != std::errc() || end == text.data() + text.size() || *end != ' ') return std::nullopt;
  at = static_cast<std::size_t>(end - text.data()) + 1;
  return v;
}

}  // namespace

void RedisBroker::Impl::announce_server(std::string_view queue, std::string_view server_id,
                                        std::string_view info_json, milliseconds ttl,
                                        DoneCallback done) {
  auto info = json::checked_announcement(queue, server_id, info_json, ttl.count());
  if (!info.is_ok()) {
    done(info.status());
    return;
  }
  Command command =
      Command::make({"EVALSHA", scripts::shas().announce, "1", protocol::servers_key(queue),
                     server_id, ms_arg(ttl), *info, ms_arg(settings_.server_history)});
  send_now(std::move(command), [this, done = std::move(done)](const Status& s, ReplyPtr r) {
    if (starts_with(r.get(), "NOSCRIPT")) reload_scripts(cmd_);
    done(expect_ok(s, r.get(), "announcing the server"));
  });
}

Result<std::string> RedisBroker::Impl::list_servers(std::string_view queue) {
  PRPC_RETURN_IF_ERROR(connect());
  std::string key = protocol::servers_key(queue);
  return run_sync<std::string>(
      [this, key](Complete<std::string> complete) {
        command_link()->send(
            Command::make({"EVALSHA", scripts::shas().list_servers, "1", key,
                           ms_arg(settings_.server_history)}),
            [this, complete](const Status& s, ReplyPtr r) {
              if (starts_with(r.get(), "NOSCRIPT")) reload_scripts(cmd_);
              Status e = expect_ok(s, r.get(), "listing the servers");
              if (!e.is_ok()) {
                complete(e);
                return;
              }
              if (!details::is_array(r.get()) || r->elements == 0) {
                complete(Status(StatusCode::kInternal, "list_servers: unexpected reply"));
                return;
              }
              std::int64_t now = integer_of(r->element[0]);
              std::vector<ServerRecord> records;
              for (std::size_t i = 1; i + 1 < r->elements; i += 2) {
                std::string_view value = text(r->element[i + 1]);
                std::size_t at = 0;
                auto announced = number_at(value, at);
                auto ttl = announced ? number_at(value, at) : std::nullopt;
                if (!ttl) continue;  // not written by this broker
                milliseconds age(std::max<std::int64_t>(0, now - *announced));
                records.push_back(ServerRecord{std::string(text(r->element[i])), age.count() < *ttl,
                                               age, std::string(value.substr(at))});
              }
              std::sort(records.begin(), records.end(),
                        [](const ServerRecord& a, const ServerRecord& b) { return a.id < b.id; });
              complete(servers_json(records));
            });
      },
      settings_.command_timeout + 1s);
}

}  // namespace prpc::redis

// Operations on a queue: its numbers, its dead letters, requeueing them, and trimming the
// entries every consumer group has served.
#include "broker_impl.hpp"
#include "prpc/protocol.hpp"

namespace prpc::redis {

using namespace std::chrono_literals;

Result<QueueStats> RedisBroker::Impl::queue_stats(std::string_view queue) {
  PRPC_RETURN_IF_ERROR(connect());
  std::string q(queue);
  return run_sync<QueueStats>(
      [this, q](Complete<QueueStats> complete) {
        auto link = command_link();
        struct State {
          QueueStats stats;
          int left = 0;
          Status error;
        };
        auto st = std::make_shared<State>();
        std::string group = sub_ ? sub_->options.group : settings_.group;
        auto finish_one = [st, complete]() {
          if (--st->left == 0) {
            if (st->error.is_ok()) {
              complete(st->stats);
            } else {
              complete(st->error);
            }
          }
        };
        std::vector<std::string> streams;
        for (Flavour f : {Flavour::kPython, Flavour::kRaw}) {
          for (int shard = 0; shard < settings_.url.shards; ++shard) {
            streams.push_back(
                details::shard_stream(protocol::request_stream(f, q), shard, settings_.url.shards));
          }
        }
        for (const std::string& stream : streams) {
          auto xlen = std::make_shared<std::int64_t>(0);
          st->left += 2;
          link->send(Command::make({"XLEN", stream}),
                     [st, xlen, finish_one](const Status& s, ReplyPtr r) {
                       Status e = expect_ok(s, r.get(), "XLEN");
                       if (!e.is_ok() && st->error.is_ok()) st->error = e;
                       *xlen = integer_of(r.get());
                       finish_one();
                     });
          link->send(Command::make({"XINFO", "GROUPS", stream}),
                     [st, xlen, group, finish_one](const Status& s, ReplyPtr r) {
                       if (!s.is_ok() && st->error.is_ok()) st->error = s;
                       std::int64_t waiting = *xlen;
                       if (s.is_ok()) {
                         details::GroupInfo g = details::read_group_info(r.get(), group);
                         st->stats.pending += g.pending;
                         st->stats.consumers = std::max(st->stats.consumers, g.consumers);
                         if (g.lag) waiting = *g.lag;
                       }
                       st->stats.length += waiting;  // no such stream: an error, and 0
                       finish_one();
                     });
        }
        st->left += 1;
        link->send(Command::make({"XLEN", protocol::dead_letter_stream(q)}),
                   [st, finish_one](const Status& s, ReplyPtr r) {
                     Status e = expect_ok(s, r.get(), "XLEN");
                     if (!e.is_ok() && st->error.is_ok()) st->error = e;
                     st->stats.dead_letters = integer_of(r.get());
                     finish_one();
                   });
      },
      settings_.command_timeout + 1s);
}

Result<std::vector<DeadLetter>> RedisBroker::Impl::dead_letters(std::string_view queue,
                                                                std::size_t max_count) {
  PRPC_RETURN_IF_ERROR(connect());
  std::string stream = protocol::dead_letter_stream(queue);
  std::string count = std::to_string(std::max<std::size_t>(1, max_count));
  return run_sync<std::vector<DeadLetter>>(
      [this, stream, count](Complete<std::vector<DeadLetter>> complete) {
        command_link()->send(Command::make({"XRANGE", stream, "-", "+", "COUNT", count}),
                             [complete](const Status& s, ReplyPtr r) {
                               Status e = expect_ok(s, r.get(), "reading dead letters");
                               if (!e.is_ok()) {
                                 complete(e);
                                 return;
                               }
                               complete(details::read_dead_letters(r.get()));
                             });
      },
      settings_.command_timeout + 1s);
}

Result<std::size_t> RedisBroker::Impl::requeue_dead_letters(std::string_view queue,
                                                            std::span<const std::string> ids) {
  if (settings_.url.cluster()) {
    // The requeue script moves entries between streams of different slots in one step, which a
    // cluster refuses; a slot-by-slot version is not written yet (docs/brokers/redis.md).
    return Status(StatusCode::kUnimplemented,
                  "requeueing dead letters is not supported on a Redis Cluster yet; read them "
                  "with `prpc dead-letters` and call again");
  }
  PRPC_RETURN_IF_ERROR(connect());
  using Page = details::RequeuePage;
  std::vector<std::string> base{"EVALSHA",
                                scripts::shas().requeue,
                                "3",
                                protocol::dead_letter_stream(queue),
                                protocol::request_stream(Flavour::kPython, queue),
                                protocol::request_stream(Flavour::kRaw, queue),
                                protocol::result_key(Flavour::kPython, queue, ""),
                                protocol::result_key(Flavour::kRaw, queue, ""),
                                std::to_string(settings_.stream_max_len)};
  auto run_page = [this](std::vector<std::string> args) {
    return run_sync<Page>(
        [this, args = std::move(args)](Complete<Page> complete) {
          std::vector<std::string_view> views(args.begin(), args.end());
          command_link()->send(Command::make(views), [complete](const Status& s, ReplyPtr r) {
            Status e = expect_ok(s, r.get(), "requeueing dead letters");
            if (!e.is_ok()) {
              complete(e);
              return;
            }
            std::optional<Page> page = details::read_requeue_page(r.get());
            if (!page) {
              complete(Status(StatusCode::kInternal, "requeue: unexpected reply from Redis"));
              return;
            }
            complete(std::move(*page));
          });
        },
        settings_.command_timeout + 1s);
  };
  std::size_t requeued = 0;
  std::int64_t skipped = 0;
  if (!ids.empty()) {
    std::vector<std::string> args = base;
    args.emplace_back("ids");
    args.insert(args.end(), ids.begin(), ids.end());
    auto page = run_page(std::move(args));
    if (!page.is_ok()) return page.status();
    requeued = static_cast<std::size_t>(page->requeued);
    skipped = page->skipped;
  } else {
    // Pages keep each script short: Redis serves nobody else while one runs.
    std::string start = "-";
    while (!start.empty()) {
      std::vector<std::string> args = base;
      args.insert(args.end(), {"all", start, "100"});
      auto page = run_page(std::move(args));
      if (!page.is_ok()) {
        if (requeued == 0) return page.status();
        return Status(page.status().code(), "requeued " + std::to_string(requeued) +
                                                ", then: " + page.status().message());
      }
      requeued += static_cast<std::size_t>(page->requeued);
      skipped += page->skipped;
      start = page->next;
    }
  }
  if (skipped > 0) {
    log_.warn(std::to_string(skipped) + " dead letter(s) of '" + std::string(queue) +
              "' left in place: their payload was cut at dead_letter_max_payload");
  }
  return requeued;
}

// Served entries are trimmed from the request streams now and then (the trim script keeps what
// any consumer group has not acknowledged).
void RedisBroker::Impl::trim_streams(Clock::time_point now) {
  if (!sub_ || settings_.trim_interval.count() <= 0 || now < sub_->next_trim) return;
  sub_->next_trim = now + settings_.trim_interval;
  for (const StreamState& s : sub_->streams) {
    command_link()->send(Command::make({"EVALSHA", scripts::shas().trim, "1", s.name}),
                         [this, name = s.name](const Status& st, ReplyPtr r) {
                           if (starts_with(r.get(), "NOSCRIPT")) reload_scripts(cmd_);
                           if (st.is_ok() && is_error(r.get())) {
                             log_.warn(error_status(r.get(), "trimming " + name).message());
                           }
                         });
  }
}

}  // namespace prpc::redis

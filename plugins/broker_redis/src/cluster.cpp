#include "cluster.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <charconv>

namespace prpc::redis::details {

namespace {

// Redirections and retries one command may go through before its error reply is final: a few
// MOVED in a row happen while a map settles, CLUSTERDOWN lasts the seconds of a failover.
constexpr int kMaxAttempts = 100;
constexpr int kMaxRedirects = 16;
constexpr milliseconds kRefreshPause{200};
constexpr milliseconds kRetryPause{100};

// "MOVED 3999 127.0.0.1:6381" or "ASK 3999 127.0.0.1:6381": the node's host and port.
bool parse_redirect(std::string_view text, std::string* host, std::uint16_t* port) {
  auto space = text.rfind(' ');
  if (space == std::string_view::npos) return false;
  std::string_view address = text.substr(space + 1);
  auto colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  unsigned p = 0;
  std::string_view digits = address.substr(colon + 1);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), p);
  if (ec != std::errc() || end != digits.data() + digits.size() || p == 0 || p > 65535) {
    return false;
  }
  *host = std::string(address.substr(0, colon));
  *port = static_cast<std::uint16_t>(p);
  return true;
}

void ignore_reply(const Status& /*s*/, const ReplyPtr& /*r*/) {}

}  // namespace

ClusterLink::ClusterLink(asio::io_context& io, LinkSettings settings, const sdk::Logger* log,
                         std::string role)
    : io_(io),
      settings_(std::move(settings)),
      log_(log),
      role_(std::move(role)),
      owner_(kSlots, kNoOwner),
      refresh_timer_(io) {}

ClusterLink::~ClusterLink() = default;

std::int64_t ClusterLink::client_id() const noexcept {
  std::lock_guard lock(mutex_);
  return last_ ? last_->client_id() : -1;
}

std::string ClusterLink::node() const {
  std::lock_guard lock(mutex_);
  for (const Node& n : nodes_) {
    if (n.link && n.link == last_) return n.address;
  }
  return {};
}

std::size_t ClusterLink::node_locked(const std::string& host, std::uint16_t port) {
  std::string address = host + ":" + std::to_string(port);
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i].address == address) {
      if (nodes_[i].link && nodes_[i].link->idle() && state_ != State::kIdle &&
          state_ != State::kClosed) {
        asio::post(io_, [link = nodes_[i].link] { link->start(); });
      }
      return i;
    }
  }
  LinkSettings ls = settings_;
  ls.url.seeds.clear();
  ls.url.shards = 1;
  ls.url.host = host;
  ls.url.port = port;
  // The seeds tried before the first map: connect() reports why none answered.
  ls.quiet_until_ready = settings_.quiet_until_ready && state_ == State::kStarting;
  auto link = std::make_shared<Link>(io_, std::move(ls), log_, role_);
  const std::size_t index = nodes_.size();
  std::weak_ptr<ClusterLink> weak = weak_from_this();
  link->on_down([weak, index](const Status& why) {
    auto self = weak.lock();
    if (!self) return;
    {
      std::lock_guard lock(self->mutex_);
      self->nodes_[index].was_down = true;
    }
    self->last_error_ = why;
    // The node may be gone for good: ask the others who owns its slots now.
    self->schedule_refresh(milliseconds(0));
    if (self->on_down_) self->on_down_(why);
  });
  link->on_ready([weak, index] {
    auto self = weak.lock();
    if (!self) return;
    if (self->state_ == State::kStarting) {
      self->refresh();
      return;
    }
    bool again = false;
    {
      std::lock_guard lock(self->mutex_);
      again = self->nodes_[index].was_down;
    }
    if (again) self->schedule_refresh(milliseconds(0));
  });
  nodes_.push_back(Node{std::move(address), link, false});
  asio::post(io_, [link] { link->start(); });
  return index;
}

std::shared_ptr<Link> ClusterLink::link_for_locked(int slot) {
  std::size_t index = slot >= 0 ? owner_[static_cast<std::size_t>(slot)] : kNoOwner;
  if (index == kNoOwner || index >= nodes_.size()) {
    // No key, or a slot nobody owns now: any node answers (a keyed command with MOVED).
    if (last_) return last_;
    for (const Node& n : nodes_) {
      if (n.link->ready()) return n.link;
    }
    return nodes_.front().link;
  }
  const std::shared_ptr<Link>& link = nodes_[index].link;
  if (slot >= 0) last_ = link;
  return link;
}

void ClusterLink::start() {
  {
    std::lock_guard lock(mutex_);
    if (state_ != State::kIdle) return;
    state_ = State::kStarting;
    // One seed at a time: refresh() adds the next while none answers.
    if (nodes_.empty()) {
      const auto& [host, port] = settings_.url.seeds.front();
      node_locked(host, port);
    } else {
      for (const Node& n : nodes_) {
        asio::post(io_, [link = n.link] { link->start(); });
      }
    }
  }
  schedule_refresh(kRefreshPause);
}

void ClusterLink::send_batch(std::vector<Request> batch) { route(std::move(batch), 0); }

void ClusterLink::send_to_node(const std::string& node, Command command, ReplyFn done) {
  std::shared_ptr<Link> link;
  {
    std::lock_guard lock(mutex_);
    for (const Node& n : nodes_) {
      if (n.address == node) link = n.link;
    }
  }
  if (link) {
    link->send(std::move(command), std::move(done));
  } else {
    send(std::move(command), std::move(done));
  }
}

void ClusterLink::route(std::vector<Request> batch, int attempt) {
  const bool on_io = io_.get_executor().running_in_this_thread();
  std::vector<std::pair<std::shared_ptr<Link>, std::vector<Request>>> groups;
  Status refused;
  {
    std::lock_guard lock(mutex_);
    State state = state_;
    if (state == State::kClosed || state == State::kIdle) {
      refused = state == State::kClosed
                    ? Status(StatusCode::kCancelled, "the Redis connection is closed")
                    : Status(StatusCode::kUnavailable,
                             "Redis Cluster at " + settings_.url.redacted() + " is not connected");
    } else if (state == State::kStarting) {
      auto deadline = Clock::now() + settings_.hold;
      for (Request& r : batch) waiting_.push_back(Waiting{std::move(r), deadline});
      return;
    } else {
      for (Request& r : batch) {
        std::shared_ptr<Link> link = link_for_locked(r.command.slot());
        ReplyFn watched = watch(r.command, std::move(r.done), r.extra, attempt);
        if (groups.empty() || groups.back().first != link) {
          groups.emplace_back(link, std::vector<Request>());
        }
        groups.back().second.push_back(Request{std::move(r.command), std::move(watched), r.extra});
      }
    }
  }
  if (!refused.is_ok()) {
    for (Request& r : batch) {
      if (on_io) {
        r.done(refused, nullptr);
      } else {
        asio::post(io_, [done = std::move(r.done), refused] { done(refused, nullptr); });
      }
    }
    return;
  }
  for (auto& [link, requests] : groups) link->send_batch(std::move(requests));
}

ReplyFn ClusterLink::watch(Command command, ReplyFn done, milliseconds extra, int attempt) {
  std::weak_ptr<ClusterLink> weak = weak_from_this();
  return [weak, command = std::move(command), done = std::move(done), extra, attempt](
             const Status& s, ReplyPtr reply) mutable {
    auto self = weak.lock();
    if (!self || !s.is_ok() || !is_error(reply.get())) {
      done(s, std::move(reply));
      return;
    }
    self->on_reply(command, done, extra, attempt, s, std::move(reply));
  };
}

// io thread: an error reply; redirections and transient cluster errors are handled here.
void ClusterLink::on_reply(const Command& command, ReplyFn& done, milliseconds extra, int attempt,
                           const Status& s, ReplyPtr reply) {
  const redisReply* r = reply.get();
  bool moved = starts_with(r, "MOVED ");
  bool ask = starts_with(r, "ASK ");
  std::string host;
  std::uint16_t port = 0;
  if ((moved || ask) && attempt < kMaxRedirects && parse_redirect(text(r), &host, &port)) {
    std::shared_ptr<Link> link;
    {
      std::lock_guard lock(mutex_);
      std::size_t index = node_locked(host, port);
      link = nodes_[index].link;
      if (moved && command.slot() >= 0) {
        owner_[static_cast<std::size_t>(command.slot())] = static_cast<std::uint16_t>(index);
        last_ = link;
      }
    }
    std::vector<Request> batch;
    // ASK: this one command goes to the slot's importing node, which takes it after ASKING.
    if (ask) batch.push_back(Request{Command::make({"ASKING"}), ignore_reply, milliseconds(0)});
    batch.push_back(Request{command, watch(command, std::move(done), extra, attempt + 1), extra});
    link->send_batch(std::move(batch));
    // A MOVED says the map changed (a failover, a migration): learn the rest of it too.
    if (moved) schedule_refresh(milliseconds(0));
    return;
  }
  // TRYAGAIN: a multi-key command during a migration; CLUSTERDOWN: the cluster is failing over
  // a master; LOADING: a node restarting. Each passes within seconds.
  bool transient =
      starts_with(r, "TRYAGAIN") || starts_with(r, "CLUSTERDOWN") || starts_with(r, "LOADING");
  if (transient && attempt < kMaxAttempts &&
      kRetryPause * attempt < std::max(settings_.hold, kRetryPause)) {
    retry_later(Request{command, std::move(done), extra}, attempt + 1);
    schedule_refresh(kRefreshPause);
    return;
  }
  done(s, std::move(reply));
}

void ClusterLink::retry_later(Request request, int attempt) {
  auto timer = std::make_shared<asio::steady_timer>(io_, kRetryPause);
  std::weak_ptr<ClusterLink> weak = weak_from_this();
  timer->async_wait([weak, timer, request = std::move(request),
                     attempt](const boost::system::error_code& ec) mutable {
    auto self = weak.lock();
    if (!self || ec) {
      request.done(Status(StatusCode::kCancelled, "the Redis connection was closed"), nullptr);
      return;
    }
    std::vector<Request> batch;
    batch.push_back(std::move(request));
    self->route(std::move(batch), attempt);
  });
}

void ClusterLink::schedule_refresh(milliseconds after) {
  if (refresh_scheduled_ || closed() || idle()) return;
  refresh_scheduled_ = true;
  refresh_timer_.expires_after(after);
  refresh_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (!self || ec) return;
    self->refresh_scheduled_ = false;
    self->refresh();
  });
}

// io thread: asks a node that answers for the slot map.
void ClusterLink::refresh() {
  expire_waiting();
  if (refreshing_ || closed() || idle()) return;
  std::vector<std::shared_ptr<Link>> candidates;
  {
    std::lock_guard lock(mutex_);
    for (const Node& n : nodes_) {
      if (n.link->ready()) candidates.push_back(n.link);
    }
    if (candidates.empty()) {
      // Nobody answers: try one more seed we have no connection to yet.
      for (const auto& [host, port] : settings_.url.seeds) {
        std::string address = host + ":" + std::to_string(port);
        bool known = std::any_of(nodes_.begin(), nodes_.end(),
                                 [&](const Node& n) { return n.address == address; });
        if (!known) {
          node_locked(host, port);
          break;
        }
      }
    }
  }
  if (candidates.empty()) {
    schedule_refresh(kRefreshPause);
    return;
  }
  refreshing_ = true;
  ask_for_map(std::move(candidates), 0);
}

void ClusterLink::ask_for_map(std::vector<std::shared_ptr<Link>> candidates, std::size_t index) {
  if (index >= candidates.size() || closed() || idle()) {
    refreshing_ = false;
    schedule_refresh(kRefreshPause);
    return;
  }
  std::shared_ptr<Link> link = candidates[index];
  std::string asked;
  {
    std::lock_guard lock(mutex_);
    for (const Node& n : nodes_) {
      if (n.link == link) asked = n.address;
    }
  }
  std::weak_ptr<ClusterLink> weak = weak_from_this();
  link->send(Command::make({"CLUSTER", "SLOTS"}), [weak, candidates = std::move(candidates), index,
                                                   asked](const Status& s, ReplyPtr reply) mutable {
    auto self = weak.lock();
    if (!self) return;
    const redisReply* r = reply.get();
    if (!s.is_ok() || !is_array(r) || r->elements == 0) {
      if (s.is_ok() && self->log_ != nullptr && index == 0) {
        self->log_->debug("CLUSTER SLOTS at " + asked +
                          " gave no map: " + std::string(is_error(r) ? text(r) : "empty"));
      }
      self->ask_for_map(std::move(candidates), index + 1);
      return;
    }
    self->refreshing_ = false;
    self->apply_map(r, asked);
  });
}

// io thread. A CLUSTER SLOTS reply: [[first, last, [host, port, id, ...], replicas...]...].
void ClusterLink::apply_map(const redisReply* reply, const std::string& asked) {
  std::string asked_host = asked.substr(0, asked.rfind(':'));
  std::vector<std::uint16_t> owner(kSlots, kNoOwner);
  std::vector<Request> reroute;
  std::vector<std::shared_ptr<Link>> unused_down;
  bool recovered = false;
  bool first = false;
  bool waiting_for_failover = false;
  std::string masters;
  {
    std::lock_guard lock(mutex_);
    std::vector<bool> owns(nodes_.size(), false);
    for (std::size_t i = 0; i < reply->elements; ++i) {
      const redisReply* range = reply->element[i];
      if (!is_array(range) || range->elements < 3 || !is_array(range->element[2]) ||
          range->element[2]->elements < 2) {
        continue;
      }
      std::int64_t from = integer_of(range->element[0], -1);
      std::int64_t to = integer_of(range->element[1], -1);
      const redisReply* master = range->element[2];
      std::string host(is_string(master->element[0]) ? text(master->element[0]) : "");
      std::int64_t port = integer_of(master->element[1], 0);
      if (host.empty() || host == "?") host = asked_host;
      if (from < 0 || to >= kSlots || from > to || port <= 0 || port > 65535) continue;
      std::size_t index = node_locked(host, static_cast<std::uint16_t>(port));
      if (owns.size() < nodes_.size()) owns.resize(nodes_.size(), false);
      if (!owns[index]) {
        owns[index] = true;
        masters += (masters.empty() ? "" : ", ") + nodes_[index].address;
      }
      std::fill(owner.begin() + from, owner.begin() + to + 1, static_cast<std::uint16_t>(index));
    }
    owns.resize(nodes_.size(), false);
    owner_.swap(owner);
    first = state_ == State::kStarting;
    if (first) state_ = State::kReady;
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      Node& n = nodes_[i];
      bool down = !n.link->ready();
      if (n.was_down) {
        recovered = true;
        n.was_down = down;
      }
      if (!down) continue;
      if (owns[i]) {
        waiting_for_failover = true;  // the map still names a node that does not answer
      } else {
        // What the lost node's link was holding goes to the slots' new owners.
        for (Request& r : n.link->take_held()) reroute.push_back(std::move(r));
        unused_down.push_back(n.link);
        n.was_down = false;
      }
    }
    for (Waiting& w : waiting_) reroute.push_back(std::move(w.request));
    waiting_.clear();
    if (last_ && std::find(unused_down.begin(), unused_down.end(), last_) != unused_down.end()) {
      last_.reset();
    }
  }
  for (const auto& link : unused_down) {
    link->stop(Status(StatusCode::kUnavailable, "the node owns no slots any more"));
  }
  if (log_ != nullptr) {
    if (!map_logged_) {
      log_->debug("Redis Cluster " + settings_.url.redacted() + " (" + role_ + "): masters " +
                  masters);
      map_logged_ = true;
    } else if (recovered && !waiting_for_failover) {
      log_->info("Redis Cluster (" + role_ + "): slot map refreshed; masters now " + masters);
    }
  }
  if (!reroute.empty()) route(std::move(reroute), 0);
  if (waiting_for_failover) schedule_refresh(kRefreshPause);
  if ((first || recovered) && on_ready_) on_ready_();
}

void ClusterLink::expire_waiting() {
  std::vector<Request> expired;
  {
    std::lock_guard lock(mutex_);
    auto now = Clock::now();
    while (!waiting_.empty() && waiting_.front().deadline <= now) {
      expired.push_back(std::move(waiting_.front().request));
      waiting_.pop_front();
    }
  }
  if (expired.empty()) return;
  Status why(StatusCode::kUnavailable,
             "no node of Redis Cluster " + settings_.url.redacted() + " answered within " +
                 std::to_string(settings_.hold.count()) + " ms" +
                 (last_error_.is_ok() ? std::string() : ": " + last_error_.message()));
  for (Request& r : expired) r.done(why, nullptr);
}

void ClusterLink::stop(const Status& why) {
  std::vector<std::shared_ptr<Link>> links;
  std::deque<Waiting> waiting;
  {
    std::lock_guard lock(mutex_);
    if (state_ == State::kClosed) return;
    state_ = State::kIdle;
    waiting.swap(waiting_);
    for (const Node& n : nodes_) links.push_back(n.link);
  }
  refresh_timer_.cancel();
  refresh_scheduled_ = false;
  last_error_ = why;
  for (Waiting& w : waiting) w.request.done(why, nullptr);
  for (const auto& link : links) link->stop(why);
}

void ClusterLink::close() {
  std::vector<std::shared_ptr<Link>> links;
  std::deque<Waiting> waiting;
  {
    std::lock_guard lock(mutex_);
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    waiting.swap(waiting_);
    for (const Node& n : nodes_) links.push_back(n.link);
  }
  refresh_timer_.cancel();
  Status cancelled(StatusCode::kCancelled, "the Redis connection was closed");
  for (Waiting& w : waiting) w.request.done(cancelled, nullptr);
  for (const auto& link : links) link->close();
}

void ClusterLink::reset(const Status& why) {
  std::vector<std::shared_ptr<Link>> links;
  {
    std::lock_guard lock(mutex_);
    for (const Node& n : nodes_) links.push_back(n.link);
  }
  for (const auto& link : links) link->reset(why);
}

}  // namespace prpc::redis::details

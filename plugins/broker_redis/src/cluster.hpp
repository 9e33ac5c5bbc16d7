// A Redis Cluster behind one Channel: the slot map (CLUSTER SLOTS, asked of any node that
// answers), one Link per master in use, each command routed to the owner of its key's slot and
// pipelined with the other commands for that node. MOVED updates the map and resends; ASK sends
// ASKING and the command to the node named (a slot being migrated); TRYAGAIN and CLUSTERDOWN
// are retried after a pause. When a node's connection fails, the map is asked again every
// kRefreshPause until it names a new owner (a replica promoted); the commands the dead node's
// link was holding then go to the new owner.
//
// Multi-key commands must name keys of one slot: the broker splits the others (broker_impl.hpp).
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "connection.hpp"
#include "slots.hpp"

namespace prpc::redis::details {

class ClusterLink : public Channel, public std::enable_shared_from_this<ClusterLink> {
 public:
  ClusterLink(asio::io_context& io, LinkSettings settings, const sdk::Logger* log,
              std::string role);
  ~ClusterLink() override;

  void start() override;
  void stop(const Status& why) override;
  void close() override;
  void reset(const Status& why) override;
  void send_batch(std::vector<Request> batch) override;
  void send_to_node(const std::string& node, Command command, ReplyFn done) override;

  bool ready() const noexcept override { return state_.load() == State::kReady; }
  bool idle() const noexcept override { return state_.load() == State::kIdle; }
  bool closed() const noexcept override { return state_.load() == State::kClosed; }
  std::int64_t client_id() const noexcept override;
  std::string node() const override;
  const Status& last_error() const noexcept override { return last_error_; }

 private:
  enum class State { kIdle, kStarting, kReady, kClosed };
  static constexpr std::uint16_t kNoOwner = 0xFFFF;

  struct Node {
    std::string address;  // host:port
    std::shared_ptr<Link> link;
    bool was_down = false;  // failed since the last map; its owner may have changed
  };
  struct Waiting {  // a command sent before the first map
    Request request;
    Clock::time_point deadline;
  };

  // The index of the node at host:port in nodes_, created (and its link started) when new.
  std::size_t node_locked(const std::string& host, std::uint16_t port);
  std::shared_ptr<Link> link_for_locked(int slot);
  // Sends each request to the node that owns its slot; `attempt` counts redirections.
  void route(std::vector<Request> batch, int attempt);
  ReplyFn watch(Command command, ReplyFn done, milliseconds extra, int attempt);
  void on_reply(const Command& command, ReplyFn& done, milliseconds extra, int attempt,
                const Status& s, ReplyPtr reply);
  void retry_later(Request request, int attempt);
  void refresh();
  void ask_for_map(std::vector<std::shared_ptr<Link>> candidates, std::size_t index);
  void apply_map(const redisReply* reply, const std::string& asked);
  void schedule_refresh(milliseconds after);
  void expire_waiting();

  asio::io_context& io_;
  const LinkSettings settings_;
  const sdk::Logger* log_;
  const std::string role_;

  // Guards what send_batch() reads from any thread: the map, the nodes and the waiting list.
  mutable std::mutex mutex_;
  std::atomic<State> state_{State::kIdle};
  std::vector<std::uint16_t> owner_;  // slot -> index in nodes_
  std::vector<Node> nodes_;           // never shrinks: indexes stay valid
  std::deque<Waiting> waiting_;
  std::shared_ptr<Link> last_;  // where the last keyed command went
  Status last_error_;

  // The io thread's own.
  asio::steady_timer refresh_timer_;
  bool refreshing_ = false;
  bool refresh_scheduled_ = false;
  bool map_logged_ = false;
};

}  // namespace prpc::redis::details

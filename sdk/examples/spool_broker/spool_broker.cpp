// A third-party broker plugin written against the installed PRPC SDK only: requests, results
// and replies are files in a spool directory shared by the processes of one machine. Renames
// are atomic, so exactly one consumer claims each request; inotify wakes consumers and clients,
// so nothing polls. It implements the whole prpc::Broker contract, redelivery and dead letters
// included, in one file.
//
//   <root>/streams/<stream>/{tmp,new,claimed}/   requests (claimed/<id>.<deliveries>)
//   <root>/results/<key>                          stored results (PROTOCOL.md key names)
//   <root>/replies/<reply_to>/<message_id>        pushed replies
//   <root>/dead/<queue>/<id>.{msg,why}            dead letters
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "prpc/sdk/plugin.hpp"
#include "prpc/version.h"

namespace spool {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string random_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::ostringstream os;
  os << std::hex << rng() << rng();
  return os.str();
}

// A time-ordered unique name, so a listing sorted by name is in arrival order.
std::string ordered_name() {
  static std::atomic<std::uint64_t> counter{0};
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  char buf[64];
  std::snprintf(buf, sizeof buf, "%020lld-%08d-%06llu", static_cast<long long>(ns),
                static_cast<int>(getpid()),
                static_cast<unsigned long long>(counter.fetch_add(1) % 1000000));
  return buf;
}

bool write_atomically(const fs::path& tmp_dir, const fs::path& target, std::string_view data) {
  std::error_code ec;
  fs::create_directories(tmp_dir, ec);
  fs::create_directories(target.parent_path(), ec);
  fs::path tmp = tmp_dir / (random_id() + ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    if (!out) return false;
  }
  fs::rename(tmp, target, ec);
  return !ec;
}

std::optional<std::string> read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

std::vector<fs::path> sorted_files(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// A thread that waits on inotify for files arriving in some directories, or a timeout.
class Watcher {
 public:
  Watcher() : inotify_(inotify_init1(IN_CLOEXEC | IN_NONBLOCK)), wake_(eventfd(0, EFD_CLOEXEC)) {}
  ~Watcher() {
    stop();
    close(inotify_);
    close(wake_);
  }
  void watch(const fs::path& dir) {
    inotify_add_watch(inotify_, dir.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE);
  }
  // Runs `on_wake` on every event and every `period`, until stop().
  void start(std::chrono::milliseconds period, std::function<void()> on_wake) {
    thread_ = std::thread([this, period, on_wake = std::move(on_wake)] {
      while (!stopping_) {
        on_wake();
        pollfd fds[2] = {{inotify_, POLLIN, 0}, {wake_, POLLIN, 0}};
        poll(fds, 2, static_cast<int>(period.count()));
        char buf[4096];
        while (read(inotify_, buf, sizeof buf) > 0) {
        }
      }
    });
  }
  void stop() {
    if (!thread_.joinable()) return;
    stopping_ = true;
    std::uint64_t one = 1;
    ssize_t n = write(wake_, &one, sizeof one);
    (void)n;
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();
    } else {
      thread_.join();
    }
  }

 private:
  int inotify_;
  int wake_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

class SpoolBroker final : public prpc::Broker {
 public:
  static constexpr const char* kName = "spool";
  static constexpr const char* kDescription =
      "Example third-party broker: a spool directory shared by the processes of one machine";
  static std::vector<prpc::sdk::OptionSpec> options() {
    return {
        {"url", PRPC_OPT_STRING, nullptr, "spool:///absolute/directory", PRPC_OPT_FLAG_REQUIRED},
        {"result_ttl", PRPC_OPT_DURATION_MS, "6h", "how long stored results are kept"},
    };
  }

  explicit SpoolBroker(const prpc::sdk::Context& ctx)
      : log_(ctx.log), result_ttl_(ctx.options.get_duration("result_ttl", 6h)) {
    std::string url = ctx.options.get("url");
    if (url.rfind("spool://", 0) != 0 || url.size() <= 8 || url[8] != '/') {
      throw std::invalid_argument("url must look like spool:///absolute/directory, not '" + url +
                                  "'");
    }
    root_ = url.substr(8);
  }

  ~SpoolBroker() override {
    subscriber_.stop();
    replies_.stop();
    std::error_code ec;
    for (const std::string& r : reply_dirs_) fs::remove_all(root_ / "replies" / r, ec);
  }

  prpc::Status connect() override {
    std::error_code ec;
    fs::create_directories(root_, ec);
    if (ec || access(root_.c_str(), W_OK) != 0) {
      return prpc::Status(prpc::StatusCode::kUnavailable,
                          "spool directory " + root_.string() + " is not writable");
    }
    return prpc::Status::ok();
  }

  prpc::Status subscribe(const prpc::SubscribeOptions& options,
                         prpc::DeliveryHandler handler) override {
    if (prpc::Status s = connect(); !s.is_ok()) return s;
    sub_ = options;
    handler_ = std::move(handler);
    for (prpc::Flavour f : flavours()) {
      std::error_code ec;
      fs::create_directories(stream_dir(f) / "new", ec);
      fs::create_directories(stream_dir(f) / "claimed", ec);
      subscriber_.watch(stream_dir(f) / "new");
    }
    auto period = std::clamp(options.visibility_timeout / 4, 20ms, 1000ms);
    subscriber_.start(period, [this] { deliver_ready(); });
    return prpc::Status::ok();
  }

  void unsubscribe() override { subscriber_.stop(); }

  void finish(const prpc::DeliveryView& d, const prpc::FinishRequest& what,
              prpc::DoneCallback done) override {
    fs::path claimed = root_ / "streams" / std::string(d.token);
    std::string id = claimed.stem().string();
    if (what.reply != nullptr) {
      const prpc::ReplyView& r = *what.reply;
      if (!r.push_only &&
          !write_atomically(root_ / "tmp", root_ / "results" / result_key(r), r.payload)) {
        return done(prpc::Status(prpc::StatusCode::kUnavailable, "cannot store the result"));
      }
      fs::path box = root_ / "replies" / std::string(r.reply_to);
      std::error_code ec;
      if (!r.reply_to.empty() && fs::is_directory(box, ec)) {
        write_atomically(root_ / "tmp", box / std::string(r.message_id), r.payload);
      }
    }
    if (!what.dead_letter_reason.empty()) {
      fs::path dead = root_ / "dead" / std::string(d.queue);
      write_atomically(root_ / "tmp", dead / (id + ".why"), what.dead_letter_reason);
      write_atomically(root_ / "tmp", dead / (id + ".msg"), d.payload);
    }
    std::error_code ec;
    fs::remove(claimed, ec);  // the acknowledgement
    {
      std::lock_guard lock(mutex_);
      outstanding_.erase(std::string(d.token));
    }
    done(prpc::Status::ok());
  }

  void touch(const prpc::DeliveryView& d) override {
    utimensat(AT_FDCWD, (root_ / "streams" / std::string(d.token)).c_str(), nullptr, 0);
  }

  void lookup_result(prpc::Flavour f, std::string_view queue, std::string_view message_id,
                     prpc::LookupCallback done) override {
    prpc::ReplyView r{f, queue, message_id, {}, {}, false};
    fs::path p = root_ / "results" / result_key(r);
    std::error_code ec;
    auto written = fs::last_write_time(p, ec);
    if (ec || fs::file_time_type::clock::now() - written > result_ttl_) {
      return done(std::optional<std::string>());
    }
    done(read_file(p));
  }

  void publish(const prpc::PublishView& m, prpc::DoneCallback done) override {
    fs::path dir = root_ / "streams" / stream_name(m.flavour, m.queue);
    if (!write_atomically(dir / "tmp", dir / "new" / ordered_name(), m.payload)) {
      return done(prpc::Status(prpc::StatusCode::kUnavailable,
                               "cannot write to the spool directory " + root_.string()));
    }
    done(prpc::Status::ok());
  }

  prpc::Result<std::string> open_replies(std::string_view queue,
                                         prpc::ReplyHandler on_reply) override {
    std::lock_guard lock(mutex_);
    reply_handler_ = std::move(on_reply);
    auto known = reply_to_.find(std::string(queue));
    if (known != reply_to_.end()) return known->second;
    std::string reply_to = "prpc_feedback_" + std::string(queue) + "_" + random_id();
    fs::path box = root_ / "replies" / reply_to;
    std::error_code ec;
    fs::create_directories(box, ec);
    if (ec) return prpc::Status(prpc::StatusCode::kUnavailable, "cannot create " + box.string());
    reply_to_[std::string(queue)] = reply_to;
    reply_dirs_.push_back(reply_to);
    replies_.watch(box);
    if (reply_dirs_.size() == 1) replies_.start(1000ms, [this] { deliver_replies(); });
    return reply_to;
  }

  prpc::Result<prpc::QueueStats> queue_stats(std::string_view queue) override {
    prpc::QueueStats s;
    for (prpc::Flavour f : {prpc::Flavour::kPython, prpc::Flavour::kRaw}) {
      fs::path dir = root_ / "streams" / stream_name(f, queue);
      s.length += static_cast<std::int64_t>(sorted_files(dir / "new").size());
      s.pending += static_cast<std::int64_t>(sorted_files(dir / "claimed").size());
    }
    for (const fs::path& p : sorted_files(root_ / "dead" / std::string(queue))) {
      if (p.extension() == ".msg") ++s.dead_letters;
    }
    return s;
  }

  prpc::Result<std::vector<prpc::DeadLetter>> dead_letters(std::string_view queue,
                                                           std::size_t max_count) override {
    std::vector<prpc::DeadLetter> out;
    fs::path dir = root_ / "dead" / std::string(queue);
    for (const fs::path& p : sorted_files(dir)) {
      if (p.extension() != ".msg" || out.size() >= max_count) continue;
      fs::path why = p;
      why.replace_extension(".why");
      out.push_back({p.stem().string(), prpc::Flavour::kPython, read_file(why).value_or(""),
                     read_file(p).value_or("")});
    }
    return out;
  }

 private:
  static std::string stream_name(prpc::Flavour f, std::string_view queue) {
    return (f == prpc::Flavour::kRaw ? "prpc_raw_" : "prpc_") + std::string(queue);
  }
  static std::string result_key(const prpc::ReplyView& r) {
    if (r.flavour == prpc::Flavour::kRaw) {
      return "prpc_feedback_raw_" + std::string(r.queue) + "_" + std::string(r.message_id);
    }
    return "prcp_message_feedback_" + std::string(r.message_id);
  }
  std::vector<prpc::Flavour> flavours() const {
    std::vector<prpc::Flavour> out;
    if (sub_.python) out.push_back(prpc::Flavour::kPython);
    if (sub_.raw) out.push_back(prpc::Flavour::kRaw);
    return out;
  }
  fs::path stream_dir(prpc::Flavour f) const {
    return root_ / "streams" / stream_name(f, sub_.queue);
  }

  // Claims what is ready, new requests and requests whose claim went stale, within the room
  // max_outstanding leaves, and hands them over.
  void deliver_ready() {
    std::vector<prpc::Delivery> batch;
    auto room = [&] {
      std::lock_guard lock(mutex_);
      return outstanding_.size() + batch.size() < sub_.max_outstanding;
    };
    for (prpc::Flavour f : flavours()) {
      fs::path dir = stream_dir(f);
      std::string stream = stream_name(f, sub_.queue);
      for (const fs::path& p : sorted_files(dir / "claimed")) {
        if (!room()) break;
        std::error_code ec;
        auto age = fs::file_time_type::clock::now() - fs::last_write_time(p, ec);
        std::string token = stream + "/claimed/" + p.filename().string();
        bool mine = false;
        {
          std::lock_guard lock(mutex_);
          mine = outstanding_.count(token) != 0;
        }
        if (ec || mine || age < sub_.visibility_timeout) continue;
        std::uint32_t count =
            static_cast<std::uint32_t>(std::stoul(p.extension().string().substr(1))) + 1;
        claim(f, p, dir / "claimed" / (p.stem().string() + "." + std::to_string(count)), count,
              batch);
      }
      for (const fs::path& p : sorted_files(dir / "new")) {
        if (!room()) break;
        claim(f, p, dir / "claimed" / (p.filename().string() + ".1"), 1, batch);
      }
    }
    if (batch.empty()) return;
    std::vector<prpc::DeliveryView> views;
    for (const prpc::Delivery& d : batch) views.push_back(d.view());
    handler_(views);
  }

  void claim(prpc::Flavour f, const fs::path& from, const fs::path& to, std::uint32_t count,
             std::vector<prpc::Delivery>& batch) {
    std::error_code ec;
    fs::rename(from, to, ec);  // atomic: only one consumer wins
    if (ec) return;
    utimensat(AT_FDCWD, to.c_str(), nullptr, 0);
    auto payload = read_file(to);
    if (!payload) return;
    prpc::Delivery d;
    d.flavour = f;
    d.queue = sub_.queue;
    d.token = stream_name(f, sub_.queue) + "/claimed/" + to.filename().string();
    d.payload = std::move(*payload);
    d.delivery_count = count;
    {
      std::lock_guard lock(mutex_);
      outstanding_.insert(d.token);
    }
    batch.push_back(std::move(d));
  }

  void deliver_replies() {
    std::vector<std::string> dirs;
    prpc::ReplyHandler handler;
    {
      std::lock_guard lock(mutex_);
      dirs = reply_dirs_;
      handler = reply_handler_;
    }
    for (const std::string& r : dirs) {
      for (const fs::path& p : sorted_files(root_ / "replies" / r)) {
        auto payload = read_file(p);
        std::error_code ec;
        fs::remove(p, ec);
        if (payload && handler) handler(p.filename().string(), *payload);
      }
    }
  }

  prpc::sdk::Logger log_;
  std::chrono::milliseconds result_ttl_;
  fs::path root_;
  prpc::SubscribeOptions sub_;
  prpc::DeliveryHandler handler_;
  std::mutex mutex_;
  std::set<std::string> outstanding_;
  std::map<std::string, std::string> reply_to_;
  std::vector<std::string> reply_dirs_;
  prpc::ReplyHandler reply_handler_;
  Watcher subscriber_;
  Watcher replies_;
};

}  // namespace spool

PRPC_PLUGIN("spool_broker_example", PRPC_VERSION_STRING,
            "An out-of-tree broker built against the installed PRPC SDK", spool::SpoolBroker)

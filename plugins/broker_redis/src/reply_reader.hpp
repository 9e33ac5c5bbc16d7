// Every place where a hiredis reply becomes the broker's data: stream entries, the claim script's
// page, XINFO GROUPS, dead letters, the requeue and finish scripts, MULTI/EXEC. Pure functions of
// a reply tree, so they are tested (and fuzzed) on hand-built replies without a connection. The
// views they return point into the reply and live as long as it does.
#pragma once

#include <hiredis/hiredis.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "prpc/broker.hpp"
#include "prpc/status.hpp"

namespace prpc::redis::details {

struct ReplyDeleter {
  void operator()(redisReply* r) const noexcept {
    if (r != nullptr) freeReplyObject(r);
  }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

// ---- the shape of one reply -------------------------------------------------------------------

inline bool is_error(const redisReply* r) { return r != nullptr && r->type == REDIS_REPLY_ERROR; }
inline bool is_nil(const redisReply* r) { return r == nullptr || r->type == REDIS_REPLY_NIL; }
inline bool is_array(const redisReply* r) { return r != nullptr && r->type == REDIS_REPLY_ARRAY; }
inline bool is_string(const redisReply* r) {
  return r != nullptr && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}
inline std::string_view text(const redisReply* r) {
  return r != nullptr && r->str != nullptr ? std::string_view(r->str, r->len) : std::string_view();
}
inline bool starts_with(const redisReply* r, std::string_view prefix) {
  return text(r).substr(0, prefix.size()) == prefix;
}
// The ACL refused a command: given directly (NOPERM) or run by a script (Redis 7 answers
// "ERR The user executing the script can't run this command ...").
inline bool is_permission_error(const redisReply* r) {
  return is_error(r) &&
         (starts_with(r, "NOPERM") ||
          text(r).find("user executing the script can't run") != std::string_view::npos);
}
inline std::int64_t integer_of(const redisReply* r, std::int64_t fallback = 0) {
  return r != nullptr && r->type == REDIS_REPLY_INTEGER ? r->integer : fallback;
}
// A Redis error reply as a Status ("ERR ...", "NOPERM ..."), its code by the error's prefix.
Status error_status(const redisReply* r, std::string_view context);
// The status of a reply that should be +OK / an integer / anything but an error.
Status expect_ok(const Status& s, const redisReply* r, std::string_view context);

// Field `name` of a flat [field, value, ...] array (a stream entry's fields, an XINFO record).
const redisReply* entry_field(const redisReply* fields, std::string_view name);
// The field names of such an array, for a note ("a, b, c"; "none"), cut at a few hundred bytes.
std::string field_names(const redisReply* fields);

// ---- streams ----------------------------------------------------------------------------------

// One entry of a stream: [id, [field, value, ...]].
struct StreamEntry {
  std::string_view id;
  // Its fields are nil: the entry was deleted (XDEL) while it was pending.
  bool deleted = false;
  std::optional<std::string_view> message;  // the `message` field
  std::string_view message_id;              // the `message_id` field (reply streams)
  std::string_view signature;               // `signature` and `key_id`, when it is signed
  std::string_view key_id;
  // Without a `message` field: the fields it has, for the note that explains the dead letter.
  std::string other_fields;
  std::uint32_t delivery_count = 1;  // from the claim script; 1 for a first delivery
};

// The entries of one stream in an XREAD / XREADGROUP answer.
struct StreamBatch {
  std::string_view stream;
  std::vector<StreamEntry> entries;
};

// XREAD / XREADGROUP: [[stream, [entry, ...]], ...]. Malformed parts are skipped.
std::vector<StreamBatch> read_streams(const redisReply* r);

// The claim script's answer: {next cursor, [entry, ...], [delivery count, ...]}.
struct ClaimPage {
  std::string cursor;  // where the next scan starts; "-" when the scan is complete
  std::vector<StreamEntry> entries;
};
std::optional<ClaimPage> read_claim(const redisReply* r);

// ---- operations -------------------------------------------------------------------------------

// XINFO GROUPS of one stream, for `group`: pending entries, consumers and the lag (entries not
// yet delivered to the group), which Redis before 7.0 does not report.
struct GroupInfo {
  std::int64_t pending = 0;
  std::int64_t consumers = 0;
  std::optional<std::int64_t> lag;
};
GroupInfo read_group_info(const redisReply* xinfo_groups, std::string_view group);

// XRANGE of a dead-letter stream.
std::vector<DeadLetter> read_dead_letters(const redisReply* r);

// The requeue script's answer: {requeued, next start ("" when done), skipped}.
struct RequeuePage {
  std::int64_t requeued = 0;
  std::string next;
  std::int64_t skipped = 0;
};
std::optional<RequeuePage> read_requeue_page(const redisReply* r);

// ---- finishing --------------------------------------------------------------------------------

// The touch script: nullopt when it says nothing about ownership (acknowledged meanwhile, an
// error), else whether this consumer still owns the entry.
std::optional<bool> read_touch(const redisReply* r);

// The outcome of a finish: `status` says whether the request may be acknowledged (stored, and
// dead-lettered when asked); `push_error` is why the push to the reply stream failed, if it did.
struct FinishOutcome {
  Status status;
  std::optional<std::string> push_error;
};
// EXEC of the finish transaction: `store_at` and `push_at` are the indexes of the SET and the
// XADD among the queued commands (-1: not sent). `refused` is the first command Redis would not
// queue, which says more than EXECABORT.
FinishOutcome read_transaction(const Status& s, const redisReply* exec, const Status& refused,
                               int store_at, int push_at);
// The finish script: {acked, pushed (1, 0 or the push's error text)}.
FinishOutcome read_finish_script(const Status& s, const redisReply* r);

}  // namespace prpc::redis::details

// Per-partition bookkeeping of a consumer: which handed-over records are finished, what offset may
// be committed (the contiguous finished prefix only: calls finish out of order), and how often
// each uncommitted record has been delivered.
//
// Delivery counts survive crashes and rebalances because they travel in the offset commit's
// metadata string: every commit lists the records at or past the committed offset that were
// started, with their counts. The next owner of the partition reads them back with the committed
// offset (see parse_ledger). No extra topic, no extra round trip in the steady state.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "wire_format.hpp"

namespace prpc::kafka {

class OffsetLedger {
 public:
  // `committed`: the partition's committed offset (negative when it has none); `inherited`: the
  // counts read from its metadata; offsets below `suspect_end` may have reached a previous owner
  // without being written down.
  OffsetLedger(std::int64_t committed, DeliveryCounts inherited, std::int64_t suspect_end);

  // Records a hand-over and returns its delivery count (1 for a first delivery).
  std::uint32_t start(std::int64_t offset);
  // The call of `offset` ended. Returns the new commit offset when the finished prefix grew.
  // The prefix grows only over offsets known to be finished or known not to be records (see
  // skip): a hole nobody accounted for stops the commit, so a record the consumer never saw is
  // delivered again to the partition's next owner instead of being committed past.
  std::optional<std::int64_t> finish(std::int64_t offset);
  // Offsets [from, to) hold no record this consumer will see (transaction markers, aborted or
  // deleted records: the consumer checked, see FetchCursor).
  std::optional<std::int64_t> skip(std::int64_t from, std::int64_t to);
  // Hands a started record over again (its finish failed); returns the new count.
  std::uint32_t restart(std::int64_t offset);
  // Forgets a started record without finishing it (it stays uncommitted; the next owner gets it).
  bool started(std::int64_t offset) const { return entries_.count(offset) != 0; }

  // Whether a previous owner may have delivered `offset` without writing it down: such records
  // are written to the ledger (committed) before they are handed over.
  bool suspect(std::int64_t offset) const { return offset < suspect_end_; }

  // The offset to commit: the next record not yet known to be finished (-1: nothing known yet).
  std::int64_t commit_offset() const { return commit_; }
  // The metadata to commit with commit_offset(), within `max_bytes`.
  std::string metadata(std::size_t max_bytes) const;
  std::size_t unfinished() const;

 private:
  struct Entry {
    bool finished = false;
    std::uint32_t count = 0;
  };
  std::optional<std::int64_t> advance();

  std::int64_t commit_;
  DeliveryCounts inherited_;
  std::int64_t suspect_end_;
  std::map<std::int64_t, Entry> entries_;
  std::map<std::int64_t, std::int64_t> gaps_;  // from -> to
};

// Checks that a partition's records arrive without holes, one assignment at a time.
//
// librdkafka moves a partition's fetch position on its own in rare races (a pause or resume right
// after an assignment, a seek: its op versions decide which start position wins), and may resume
// past records it never returned. A record beyond the expected offset is therefore not taken at
// once: the consumer seeks back to the expected offset, and only when the same later record comes
// again from there is the hole accepted as real (transaction markers, records deleted by
// retention). Records below the expected offset were fetched before in this assignment: repeats.
class FetchCursor {
 public:
  enum class Verdict {
    kTake,          // the next record (or the first, when the start was unknown)
    kRecovered,     // the next record, fetched after a seek back: the hole was the consumer's
    kTakeAfterGap,  // a hole [gap_from, offset) that a seek back confirmed
    kSeekBack,      // seek the partition to expected() and drop this record
    kRepeat,        // fetched before in this assignment: drop it
  };

  // `start`: the offset the assignment starts fetching at (negative: unknown, take the first).
  explicit FetchCursor(std::int64_t start) : expected_(start < 0 ? -1 : start) {}

  Verdict offer(std::int64_t offset);
  // The next offset expected (-1 before the first record when the start was unknown).
  std::int64_t expected() const { return expected_; }
  // Where the hole of the last kTakeAfterGap began.
  std::int64_t gap_from() const { return gap_from_; }
  // The seek back failed: the record is taken, but its hole is not accounted for (the ledger
  // stops committing there, and the partition's next owner fetches the hole again).
  void seek_failed(std::int64_t offset) {
    sought_ = -1;
    expected_ = offset + 1;
  }

 private:
  std::int64_t expected_;
  std::int64_t sought_ = -1;  // the offset sought back to, while the seek's outcome is unknown
  std::int64_t gap_from_ = -1;
};

}  // namespace prpc::kafka

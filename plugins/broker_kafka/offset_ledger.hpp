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

namespace prpc::kafka {

// offset -> deliveries already started
using DeliveryCounts = std::map<std::int64_t, std::uint32_t>;

// "prpc1 <base> <delta>:<count> ..." -> counts of offsets >= committed. Unknown text: empty.
DeliveryCounts parse_ledger(std::string_view metadata, std::int64_t committed);

class OffsetLedger {
 public:
  // `committed`: the partition's committed offset (negative when it has none); `inherited`: the
  // counts read from its metadata; offsets below `suspect_end` may have reached a previous owner
  // without being written down.
  OffsetLedger(std::int64_t committed, DeliveryCounts inherited, std::int64_t suspect_end);

  // Records a hand-over and returns its delivery count (1 for a first delivery).
  std::uint32_t start(std::int64_t offset);
  // The call of `offset` ended. Returns the new commit offset when the finished prefix grew.
  std::optional<std::int64_t> finish(std::int64_t offset);
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
  std::int64_t commit_;
  DeliveryCounts inherited_;
  std::int64_t suspect_end_;
  std::map<std::int64_t, Entry> entries_;
};

}  // namespace prpc::kafka

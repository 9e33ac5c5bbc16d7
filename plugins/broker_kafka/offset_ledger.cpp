#include "offset_ledger.hpp"

#include <algorithm>

namespace prpc::kafka {

OffsetLedger::OffsetLedger(std::int64_t committed, DeliveryCounts inherited,
                           std::int64_t suspect_end)
    : commit_(committed < 0 ? -1 : committed),
      inherited_(std::move(inherited)),
      suspect_end_(suspect_end) {}

std::uint32_t OffsetLedger::start(std::int64_t offset) {
  std::uint32_t previous = 0;
  if (auto it = inherited_.find(offset); it != inherited_.end()) {
    previous = it->second;
    inherited_.erase(it);
  }
  // Without a committed offset, the first record handed over is where the partition starts.
  if (commit_ < 0 && entries_.empty()) commit_ = offset;
  Entry& e = entries_[offset];
  e.finished = false;
  e.count = previous + 1;
  return e.count;
}

std::uint32_t OffsetLedger::restart(std::int64_t offset) {
  Entry& e = entries_[offset];
  e.finished = false;
  e.count += 1;
  return e.count;
}

std::optional<std::int64_t> OffsetLedger::finish(std::int64_t offset) {
  auto it = entries_.find(offset);
  if (it == entries_.end()) return std::nullopt;
  it->second.finished = true;
  return advance();
}

std::optional<std::int64_t> OffsetLedger::skip(std::int64_t from, std::int64_t to) {
  if (to <= from) return std::nullopt;
  std::int64_t& end = gaps_[from];
  end = std::max(end, to);
  return advance();
}

std::optional<std::int64_t> OffsetLedger::advance() {
  if (commit_ < 0) return std::nullopt;  // nothing handed over yet: no known start
  std::int64_t before = commit_;
  for (;;) {
    // Holes the consumer confirmed, at or below the prefix's end.
    while (!gaps_.empty() && gaps_.begin()->first <= commit_) {
      commit_ = std::max(commit_, gaps_.begin()->second);
      gaps_.erase(gaps_.begin());
    }
    if (entries_.empty() || entries_.begin()->first != commit_ ||
        !entries_.begin()->second.finished) {
      break;
    }
    commit_ += 1;
    entries_.erase(entries_.begin());
  }
  if (commit_ == before) return std::nullopt;
  // Counts of records the prefix passed are of no use to anyone.
  inherited_.erase(inherited_.begin(), inherited_.lower_bound(commit_));
  return commit_;
}

FetchCursor::Verdict FetchCursor::offer(std::int64_t offset) {
  if (expected_ < 0 || offset == expected_) {
    bool recovered = sought_ >= 0 && offset == sought_;
    expected_ = offset + 1;
    sought_ = -1;
    return recovered ? Verdict::kRecovered : Verdict::kTake;
  }
  if (offset < expected_) return Verdict::kRepeat;
  if (sought_ == expected_) {
    // Fetched again from the expected offset, and still the first record is later: a real hole.
    gap_from_ = expected_;
    expected_ = offset + 1;
    sought_ = -1;
    return Verdict::kTakeAfterGap;
  }
  sought_ = expected_;
  return Verdict::kSeekBack;
}

std::string OffsetLedger::metadata(std::size_t max_bytes) const {
  std::int64_t base = commit_ < 0 ? 0 : commit_;
  // Our own entries, with what the previous owner wrote and we have not reached yet.
  DeliveryCounts all;
  for (const auto& [offset, count] : inherited_) {
    if (offset >= base) all[offset] = count;
  }
  for (const auto& [offset, e] : entries_) {
    if (offset >= base) all[offset] = e.count;
  }
  return format_ledger(base, all, max_bytes);
}

std::size_t OffsetLedger::unfinished() const {
  std::size_t n = 0;
  for (const auto& [offset, e] : entries_) {
    if (!e.finished) ++n;
  }
  return n;
}

}  // namespace prpc::kafka

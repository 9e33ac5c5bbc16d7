#include "reply_reader.hpp"

#include <algorithm>

#include "prpc/protocol.hpp"

namespace prpc::redis::details {

namespace {

constexpr std::size_t kMaxNoteFields = 200;

// [[id, fields], ...]; `counts` (the claim script's) gives each entry's delivery count.
std::vector<StreamEntry> read_entries(const redisReply* entries, const redisReply* counts) {
  std::vector<StreamEntry> out;
  if (!is_array(entries)) return out;
  out.reserve(entries->elements);
  for (std::size_t j = 0; j < entries->elements; ++j) {
    const redisReply* e = entries->element[j];
    if (!is_array(e) || e->elements < 1) continue;
    StreamEntry entry;
    entry.id = text(e->element[0]);
    const redisReply* fields = e->elements > 1 ? e->element[1] : nullptr;
    if (is_nil(fields)) {
      entry.deleted = true;
      out.push_back(std::move(entry));
      continue;
    }
    if (is_array(counts) && j < counts->elements) {
      entry.delivery_count =
          static_cast<std::uint32_t>(std::max<long long>(1, integer_of(counts->element[j])));
    }
    if (const redisReply* message = entry_field(fields, protocol::kMessageField)) {
      entry.message = text(message);
    } else {
      entry.other_fields = field_names(fields);
    }
    entry.message_id = text(entry_field(fields, protocol::kMessageIdField));
    entry.signature = text(entry_field(fields, protocol::kSignatureField));
    entry.key_id = text(entry_field(fields, protocol::kKeyIdField));
    out.push_back(std::move(entry));
  }
  return out;
}

}  // namespace

Status error_status(const redisReply* r, std::string_view context) {
  std::string_view t = text(r);
  StatusCode code = StatusCode::kInternal;
  auto has = [&](std::string_view p) { return t.substr(0, p.size()) == p; };
  if (has("NOGROUP") || has("NOSCRIPT")) {
    code = StatusCode::kNotFound;
  } else if (has("NOPERM") || has("NOAUTH") || has("WRONGPASS") || has("WRONGTYPE")) {
    code = StatusCode::kFailedPrecondition;
  } else if (has("OOM")) {
    code = StatusCode::kResourceExhausted;
  } else if (has("LOADING") || has("BUSY") || has("MASTERDOWN") || has("TRYAGAIN") ||
             has("READONLY") || has("CLUSTERDOWN")) {
    code = StatusCode::kUnavailable;
  }
  std::string msg(context);
  if (!msg.empty()) msg += ": ";
  msg += t;
  return Status(code, std::move(msg));
}

Status expect_ok(const Status& s, const redisReply* r, std::string_view context) {
  if (!s.is_ok()) return s.with_context(context);
  if (is_error(r)) return error_status(r, context);
  return Status::ok();
}

const redisReply* entry_field(const redisReply* fields, std::string_view name) {
  if (!is_array(fields)) return nullptr;
  for (std::size_t i = 0; i + 1 < fields->elements; i += 2) {
    if (text(fields->element[i]) == name) return fields->element[i + 1];
  }
  return nullptr;
}

std::string field_names(const redisReply* fields) {
  std::string out;
  if (!is_array(fields)) return out;
  for (std::size_t i = 0; i + 1 < fields->elements; i += 2) {
    if (!out.empty()) out += ", ";
    out += text(fields->element[i]);
    if (out.size() > kMaxNoteFields) {
      out.resize(kMaxNoteFields);
      out += "...";
      break;
    }
  }
  return out.empty() ? std::string("none") : out;
}

std::vector<StreamBatch> read_streams(const redisReply* r) {
  std::vector<StreamBatch> out;
  if (!is_array(r)) return out;
  for (std::size_t i = 0; i < r->elements; ++i) {
    const redisReply* stream = r->element[i];
    if (!is_array(stream) || stream->elements < 2 || !is_array(stream->element[1])) continue;
    out.push_back(StreamBatch{text(stream->element[0]), read_entries(stream->element[1], nullptr)});
  }
  return out;
}

std::optional<ClaimPage> read_claim(const redisReply* r) {
  if (!is_array(r) || r->elements < 3) return std::nullopt;
  ClaimPage page;
  page.cursor = std::string(text(r->element[0]));
  if (page.cursor.empty()) page.cursor = "-";
  page.entries = read_entries(r->element[1], r->element[2]);
  return page;
}

GroupInfo read_group_info(const redisReply* xinfo_groups, std::string_view group) {
  GroupInfo info;
  if (!is_array(xinfo_groups)) return info;
  for (std::size_t i = 0; i < xinfo_groups->elements; ++i) {
    const redisReply* g = xinfo_groups->element[i];
    if (text(entry_field(g, "name")) != group) continue;
    info.pending += integer_of(entry_field(g, "pending"));
    info.consumers = std::max(info.consumers, integer_of(entry_field(g, "consumers")));
    const redisReply* lag = entry_field(g, "lag");
    if (lag != nullptr && lag->type == REDIS_REPLY_INTEGER) info.lag = lag->integer;
  }
  return info;
}

std::vector<DeadLetter> read_dead_letters(const redisReply* r) {
  std::vector<DeadLetter> out;
  if (!is_array(r)) return out;
  for (std::size_t i = 0; i < r->elements; ++i) {
    const redisReply* entry = r->element[i];
    if (!is_array(entry) || entry->elements < 2) continue;
    const redisReply* fields = entry->element[1];
    DeadLetter d;
    d.id = std::string(text(entry->element[0]));
    d.flavour = text(entry_field(fields, "flavour")) == "raw" ? Flavour::kRaw : Flavour::kPython;
    d.reason = std::string(text(entry_field(fields, "reason")));
    d.payload = std::string(text(entry_field(fields, "payload")));
    out.push_back(std::move(d));
  }
  return out;
}

std::optional<RequeuePage> read_requeue_page(const redisReply* r) {
  if (!is_array(r) || r->elements < 3) return std::nullopt;
  return RequeuePage{integer_of(r->element[0]), std::string(text(r->element[1])),
                     integer_of(r->element[2])};
}

std::optional<bool> read_touch(const redisReply* r) {
  // 0: acknowledged meanwhile, which says nothing about who owned it.
  if (r == nullptr || r->type != REDIS_REPLY_INTEGER || r->integer == 0) return std::nullopt;
  return r->integer == 1;
}

FinishOutcome read_transaction(const Status& s, const redisReply* exec, const Status& refused,
                               int store_at, int push_at) {
  FinishOutcome out;
  out.status = expect_ok(s, exec, "finishing the request");
  if (!out.status.is_ok() && !refused.is_ok()) out.status = refused;
  if (out.status.is_ok() && !is_array(exec)) {
    out.status =
        Status(StatusCode::kInternal, "finishing the request: the transaction did not run");
  }
  if (!out.status.is_ok()) return out;
  auto at = [&](int i) -> const redisReply* {
    return i >= 0 && static_cast<std::size_t>(i) < exec->elements ? exec->element[i] : nullptr;
  };
  if (is_error(at(store_at))) out.status = error_status(at(store_at), "storing the result");
  if (is_error(at(push_at))) out.push_error = std::string(text(at(push_at)));
  return out;
}

FinishOutcome read_finish_script(const Status& s, const redisReply* r) {
  FinishOutcome out;
  out.status = expect_ok(s, r, "finishing the request");
  if (out.status.is_ok() && is_array(r) && r->elements >= 2 &&
      r->element[1]->type != REDIS_REPLY_INTEGER) {
    out.push_error = std::string(text(r->element[1]));
  }
  return out;
}

}  // namespace prpc::redis::details

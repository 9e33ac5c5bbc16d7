// Lua scripts the broker runs with EVAL. Each one does in a single atomic step what would
// otherwise race with other servers between two round trips.
#pragma once

namespace prpc::redis::details::scripts {

// Claims entries idle past the visibility timeout and reports how often each was delivered:
// XAUTOCLAIM increments the counter but does not return it.
// KEYS[1] stream; ARGV group, consumer, min-idle-ms, cursor, count.
// Returns {next_cursor, {{id, fields}...}, {delivery_count...}}.
inline constexpr const char* kClaim = R"lua(
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local counts = {}
for i, e in ipairs(r[2]) do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
  if p[1] then counts[i] = p[1][4] else counts[i] = 1 end
end
return {r[1], r[2], counts}
)lua";

// Resets a pending entry's idle time, but only while this consumer still owns it: a plain
// XCLAIM would take it back from a server that has legitimately claimed it.
// KEYS[1] stream; ARGV group, consumer, id. Returns 1 when refreshed, 0 when no longer ours.
inline constexpr const char* kTouch = R"lua(
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if p[1] and p[1][2] == ARGV[2] then
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
  return 1
end
return 0
)lua";

// Trims a request stream below the oldest entry some group still needs: everything older than
// both the group's oldest pending entry and its last delivered entry has been served and acked.
// Never drops a request that was not answered. KEYS[1] stream. Returns the number trimmed.
inline constexpr const char* kTrim = R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local function older(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if #am ~= #bm then return #am < #bm end
  if am ~= bm then return am < bm end
  if #as ~= #bs then return #as < #bs end
  return as < bs
end
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
if #groups == 0 then return 0 end
local bound = nil
for _, g in ipairs(groups) do
  local name, last, pending
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1]
    elseif g[i] == 'last-delivered-id' then last = g[i + 1]
    elseif g[i] == 'pending' then pending = g[i + 1] end
  end
  local keep = last
  if pending > 0 then
    local summary = redis.call('XPENDING', KEYS[1], name)
    if older(summary[2], keep) then keep = summary[2] end
  end
  if bound == nil or older(keep, bound) then bound = keep end
end
if bound == '0-0' then return 0 end
return redis.call('XTRIM', KEYS[1], 'MINID', '~', bound)
)lua";

}  // namespace prpc::redis::details::scripts

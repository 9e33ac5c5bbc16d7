// Lua scripts the broker runs with EVALSHA (every connection loads them when it logs in). Each
// does in one atomic step what would otherwise race with other servers, or cost a round trip,
// between two commands.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace prpc::redis::details::scripts {

// finish(): store the result -> push the reply -> dead-letter -> acknowledge, in this order and
// all or nothing up to the ack: a failed SET or dead-letter XADD raises, so the request is not
// acknowledged and comes back. Only the push may fail (a foreign key of another type under the
// reply address); the result key is the source of truth for that client.
// KEYS[1] request stream, KEYS[2] result key, KEYS[3] reply stream, KEYS[4] dead-letter stream,
// KEYS[5] the result's signature key; the ones not used are the request stream again (an ACL
// user's key patterns must match every key, used or not).
// ARGV[1] group, ARGV[2] entry id, ARGV[3..5] '1' to store / push / dead-letter, ARGV[6] reply
// payload, ARGV[7] result TTL ms, ARGV[8] message_id, ARGV[9] reply stream TTL ms, ARGV[10] reply
// stream cap (0: none), ARGV[11] dead-letter stream cap (0: none), ARGV[12] the reply's
// signature ('' when unsigned), ARGV[13] its key id, ARGV[14...] dead-letter fields.
// Returns {acked (0/1), pushed (1, 0, or the push's error text)}.
inline constexpr const char* kFinish = R"lua(
if ARGV[3] == '1' then
  redis.call('SET', KEYS[2], ARGV[6], 'PX', ARGV[7])
  if ARGV[12] ~= '' then redis.call('SET', KEYS[5], ARGV[12], 'PX', ARGV[7]) end
end
local pushed = 0
if ARGV[4] == '1' then
  local entry = {'message_id', ARGV[8], 'message', ARGV[6]}
  if ARGV[12] ~= '' then
    entry[5], entry[6], entry[7], entry[8] = 'signature', ARGV[12], 'key_id', ARGV[13]
  end
  local r
  if ARGV[10] ~= '0' then
    r = redis.pcall('XADD', KEYS[3], 'MAXLEN', '~', ARGV[10], '*', unpack(entry))
  else
    r = redis.pcall('XADD', KEYS[3], '*', unpack(entry))
  end
  if type(r) == 'table' and r.err then
    pushed = r.err
  else
    redis.call('PEXPIRE', KEYS[3], ARGV[9])
    pushed = 1
  end
end
if ARGV[5] == '1' then
  local fields = {}
  for i = 14, #ARGV do fields[#fields + 1] = ARGV[i] end
  if ARGV[11] ~= '0' then
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[11], '*', unpack(fields))
  else
    redis.call('XADD', KEYS[4], '*', unpack(fields))
  end
end
return {redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]), pushed}
)lua";

// Claims the pending entries of dead servers at once, then entries idle past the visibility
// timeout, and reports how often each was delivered (XCLAIM increments the counter but does not
// return it). A server is dead when its deadline in the liveness hash (written by kHeartbeat) has
// passed; a consumer that never wrote one (an older PRPC, the original) is left to the visibility
// timeout. A dead server that holds nothing any more leaves the group (XGROUP DELCONSUMER drops a
// consumer's pending entries, so only once they are all claimed), and leaves the hash `grace` ms
// after its deadline. Entries this consumer is still working on are skipped: claiming them back
// would only inflate their delivery count. Its own entries that it is not working on (read just
// before a connection dropped) are claimed like any other.
// KEYS[1] stream, KEYS[2] liveness hash; ARGV group, consumer, min-idle-ms, start ('-' or '(' id),
// count, grace-ms ('0': liveness off), then the ids to skip.
// Returns {next_start, {{id, fields}...}, {delivery_count...}}.
inline constexpr const char* kClaim = R"lua(
local want = tonumber(ARGV[5])
local ids, counts = {}, {}
local gone = {}
if ARGV[6] ~= '0' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local alive = redis.call('HGETALL', KEYS[2])
  for i = 1, #alive, 2 do
    local name, deadline = alive[i], tonumber(alive[i + 1])
    if name ~= ARGV[2] and deadline < now then
      local room = want - #ids
      local p = {}
      if room > 0 then p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', room, name) end
      for _, e in ipairs(p) do
        ids[#ids + 1] = e[1]
        counts[e[1]] = e[4] + 1
      end
      if room > 0 and #p < room then
        gone[#gone + 1] = {name, deadline < now - tonumber(ARGV[6])}
      end
    end
  end
end
local claimed = {}
if #ids > 0 then
  claimed = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, unpack(ids))
end
for _, g in ipairs(gone) do
  if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, g[1]) == 0 then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], g[1])
    if g[2] then redis.call('HDEL', KEYS[2], g[1]) end
  end
end
local nxt = ARGV[4]
local left = want - #claimed
if left > 0 then
  local skip = {}
  for i = 7, #ARGV do skip[ARGV[i]] = true end
  local page = left + #ARGV - 6
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[3], ARGV[4], '+', page)
  local idle, last = {}, nil
  for _, e in ipairs(p) do
    if #idle >= left then break end
    last = e[1]
    if not (e[2] == ARGV[2] and skip[e[1]]) then
      idle[#idle + 1] = e[1]
      counts[e[1]] = e[4] + 1
    end
  end
  nxt = '-'
  if last ~= nil and (#idle >= left or #p >= page) then nxt = '(' .. last end
  if #idle > 0 then
    for _, e in ipairs(redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], unpack(idle))) do
      claimed[#claimed + 1] = e
    end
  end
end
local out = {}
for i, e in ipairs(claimed) do
  if e then out[i] = counts[e[1]] or 1 else out[i] = 1 end
end
return {nxt, claimed, out}
)lua";

// Renews this server's liveness deadline: Redis's clock plus the liveness timeout, so servers'
// clocks never matter. The hash expires when no server has renewed it for a day.
// KEYS[1] liveness hash; ARGV consumer, liveness-timeout-ms.
inline constexpr const char* kHeartbeat = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], now + tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], 86400000)
return now
)lua";

// Resets a pending entry's idle time, but only while this consumer still owns it: a plain
// XCLAIM would take it back from a server that has legitimately claimed it.
// KEYS[1] stream; ARGV group, consumer, id. Returns 1 when refreshed, 0 when it is no longer
// pending (acknowledged), -1 when another consumer has it now.
inline constexpr const char* kTouch = R"lua(
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if not p[1] then return 0 end
if p[1][2] ~= ARGV[2] then return -1 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
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

// Puts dead letters back into the request stream of their flavour: XADD the original payload
// (with its signature, when it had one), DEL the error result stored under its message_id and
// the result's signature (a server answers a request whose result exists from that result
// instead of running it), then XDEL the dead letter. A script is atomic,
// and even a command failing halfway leaves the entry in both places rather than in neither.
// A payload cut at dead_letter_max_payload is not requeued (it would only fail again).
// The result keys are built here from the dead letter's message_id, so they are not in KEYS:
// fine on one Redis; in a Redis Cluster (keys of several slots) requeue is refused.
// KEYS[1] dead-letter stream, KEYS[2] prpc_{q}, KEYS[3] prpc_raw_{q}. ARGV[1] / ARGV[2] the
// Python / raw result key prefix, ARGV[3] request stream cap (0: none), ARGV[4] 'ids' followed by
// the ids, or 'all' followed by the start ('-' or '(' id) and a page size.
// Returns {requeued, next start ('' when done), skipped because truncated}.
inline constexpr const char* kRequeue = R"lua(
local function requeue(id, fields)
  local f = {}
  for i = 1, #fields, 2 do f[fields[i]] = fields[i + 1] end
  if f['truncated'] == '1' then return 0 end
  local stream, prefix = KEYS[2], ARGV[1]
  if f['flavour'] == 'raw' then stream, prefix = KEYS[3], ARGV[2] end
  local entry = {'message', f['payload'] or ''}
  if f['signature'] then
    entry[3], entry[4], entry[5], entry[6] = 'signature', f['signature'], 'key_id', f['key_id'] or ''
  end
  if ARGV[3] ~= '0' then
    redis.call('XADD', stream, 'MAXLEN', '~', ARGV[3], '*', unpack(entry))
  else
    redis.call('XADD', stream, '*', unpack(entry))
  end
  if f['message_id'] and f['message_id'] ~= '' then
    redis.call('DEL', prefix .. f['message_id'], prefix .. f['message_id'] .. ':signature')
  end
  redis.call('XDEL', KEYS[1], id)
  return 1
end
local n, skipped, nxt = 0, 0, ''
if ARGV[4] == 'ids' then
  for i = 5, #ARGV do
    local e = redis.pcall('XRANGE', KEYS[1], ARGV[i], ARGV[i])
    if type(e) == 'table' and not e.err and e[1] then
      local r = requeue(e[1][1], e[1][2])
      n, skipped = n + r, skipped + 1 - r
    end
  end
else
  local want = tonumber(ARGV[6])
  local e = redis.call('XRANGE', KEYS[1], ARGV[5], '+', 'COUNT', want)
  for _, x in ipairs(e) do
    local r = requeue(x[1], x[2])
    n, skipped = n + r, skipped + 1 - r
  end
  if #e >= want then nxt = '(' .. e[#e][1] end
end
return {n, nxt, skipped}
)lua";

// The SHA-1 (hex) EVALSHA names a script by.
std::string sha1_hex(std::string_view body);

// Records a server's announcement in the queue's server hash, stamped with Redis's clock so
// that every reader measures ages on one clock. The hash expires when nobody has announced for
// the ttl plus the history (live servers announce every second or so, keeping it).
// KEYS[1] server hash; ARGV server id, ttl ms, info JSON, history ms. Returns the time (ms).
inline constexpr const char* kAnnounce = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d %d ', now, tonumber(ARGV[2])) .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + tonumber(ARGV[4]))
return now
)lua";

// The announcements of a queue's servers with Redis's time; forgets those silent for longer than
// their ttl plus the history. KEYS[1] server hash; ARGV history ms.
// Returns {now, id, "<announced ms> <ttl ms> <info>", ...}.
inline constexpr const char* kListServers = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('HGETALL', KEYS[1])
local out = {now}
for i = 1, #all, 2 do
  local at, ttl = string.match(all[i + 1], '^(%d+) (%d+) ')
  if at and now - tonumber(at) < tonumber(ttl) + tonumber(ARGV[1]) then
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return out
)lua";

struct Shas {
  std::string finish, claim, touch, trim, requeue, heartbeat, announce, list_servers;
};
const Shas& shas();
// Every script body, for SCRIPT LOAD at login.
std::vector<std::string> all();

}  // namespace prpc::redis::details::scripts

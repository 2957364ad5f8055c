"""The Redis outbox's Lua scripts: every change that spans several keys, made atomic inside Redis.

Each script gets ``KEYS[1]``, the outbox's ``meta`` hash, whose name carries the hash tag every key
of one outbox shares (so a Redis Cluster routes the script to the node holding them all), and builds
the other names from the prefix in ``ARGV[1]``. Time is Redis's own (``TIME``), the one clock of
every host, with one exception: FORWARD compares a journaled record's ``created_at`` (its host's
clock, taken when nothing could ask Redis) with an erasure's Redis time, so an erasure's reach
into other hosts' journals is as exact as their clocks (docs/redis.md, "The forwarder"). The keys
and why the rows are kept this way are in docs/redis.md ("The Redis outbox").
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ACK",
    "CLAIM",
    "DEAD_LETTER",
    "DROP_UNSENT",
    "FORWARD",
    "LEAVE",
    "PAUSE",
    "PUT",
    "RELEASE",
    "RETRY_DEAD",
    "RETRY_LATER",
    "RETRY_NOW",
    "STATS",
]

# Keys under the prefix B: seq (row ids), meta (counts: n rows held, delivered, dropped, refused,
# last_error), r:<id> (a row: k kind, m method, p path, b body, ok/sk its keys, c created_at,
# d droppable, a attempts, u due_at, o lease owner, st 0 unfinished / 2 dead, e erased, pt
# partition, ls/le/rb/f the last failure), p:<n> (a partition's unfinished ids), k:<key> and s:<key>
# (unfinished ids by ordering key and by shared key), fly (ids leased, by lease end), dead (dead
# ids, by failure time), erasures (erased keys, by time), intake:<folder> (journal offsets), sent,
# pause, workers, lease:<n>.
_PRELUDE: Final = """
local B = ARGV[1]
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function unindex(id, ok, sk, pt)
  redis.call('ZREM', B .. 'p:' .. pt, id)
  if ok then redis.call('ZREM', B .. 'k:' .. ok, id) end
  if sk then redis.call('ZREM', B .. 's:' .. sk, id) end
  redis.call('ZREM', B .. 'fly', id)
end
local function reindex(id, ok, sk, pt)
  redis.call('ZADD', B .. 'p:' .. pt, id, id)
  if ok then redis.call('ZADD', B .. 'k:' .. ok, id, id) end
  if sk then redis.call('ZADD', B .. 's:' .. sk, id, id) end
end
-- An unsent row goes for good: unindexed, deleted, counted in 'dropped'.
local function drop(id)
  local v = redis.call('HMGET', B .. 'r:' .. id, 'ok', 'sk', 'pt', 'st')
  if not v[3] then return 0 end
  unindex(id, v[1], v[2], v[3])
  if v[4] == '2' then redis.call('ZREM', B .. 'dead', id) end
  redis.call('DEL', B .. 'r:' .. id)
  redis.call('HINCRBY', KEYS[1], 'n', -1)
  redis.call('HINCRBY', KEYS[1], 'dropped', 1)
  return 1
end
-- Fields at their default are left out (k 'event', m 'POST', p '', a 0, u 0, st 0): a journaled
-- event is written with four to six fields, which is most of what forwarding costs.
local function add_row(id, kind, method, path, body, ok, sk, created, droppable, pt)
  local fields = {'b', body, 'c', created, 'd', droppable, 'pt', pt}
  if kind ~= 'event' or method ~= 'POST' or path ~= '' then
    fields[9], fields[10], fields[11], fields[12], fields[13], fields[14] = 'k', kind, 'm', method, 'p', path
  end
  if ok ~= '' then
    fields[#fields + 1] = 'ok'; fields[#fields + 1] = ok
    if sk ~= '' then fields[#fields + 1] = 'sk'; fields[#fields + 1] = sk else sk = false end
  else
    ok, sk = false, false
  end
  redis.call('HSET', B .. 'r:' .. id, unpack(fields))
  reindex(id, ok, sk, pt)
end
-- A visitor over their share loses their oldest droppable rows not leased now (most droppable
-- first; of the cart updates the newest stays), down to the share (see docs/delivery.md).
local function crowd(key, share, t)
  local zkey = B .. 'k:' .. key
  local excess = redis.call('ZCARD', zkey) - share
  if excess <= 0 then return 0 end
  local candidates, newest_cart = {}, nil
  for _, id in ipairs(redis.call('ZRANGE', zkey, 0, -1)) do
    local v = redis.call('HMGET', B .. 'r:' .. id, 'd', 'o', 'u')
    local d = tonumber(v[1])
    if d == 1 then newest_cart = id end
    local leased = v[2] and tonumber(v[3]) > t
    if d > 0 and not leased then candidates[#candidates + 1] = {d, tonumber(id), id} end
  end
  table.sort(candidates, function(x, y) if x[1] ~= y[1] then return x[1] > y[1] end return x[2] < y[2] end)
  local dropped = 0
  for _, c in ipairs(candidates) do
    if dropped >= excess then break end
    if c[3] ~= newest_cart then dropped = dropped + drop(c[3]) end
  end
  return dropped
end
-- A settled row that was erased while in flight (drop_unsent) goes instead of being kept.
local function erased(id)
  if redis.call('HGET', B .. 'r:' .. id, 'e') == '1' then drop(id); return true end
  return false
end
"""

#: One request queued: ARGV kind, method, path, body, ordering key, shared key ('' for none),
#: created_at, droppable, partition, the rows allowed, the visitor share. Returns the row id (-1
#: when the cap refused it; an event's refusal is counted), the rows held then, and the rows the
#: visitor's share dropped.
PUT: Final = _PRELUDE + """
local held = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if held >= tonumber(ARGV[11]) then
  if ARGV[2] == 'event' then redis.call('HINCRBY', KEYS[1], 'refused', 1) end
  return {-1, held, 0}
end
local id = redis.call('INCR', B .. 'seq')
add_row(id, ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10])
held = redis.call('HINCRBY', KEYS[1], 'n', 1)
local dropped = 0
if ARGV[9] ~= '0' and ARGV[6] ~= '' then dropped = crowd(ARGV[6], tonumber(ARGV[12]), clock()) end
return {id, held - dropped, dropped}
"""

#: Journaled events moved in, exactly once: ARGV folder id, visitor share, how many offsets, then
#: (segment, offset expected, new offset) each, how many segments to forget and their names, then
#: the records packed in one argument (``redis_intake.pack_records``: droppable, partition,
#: created_at, ordering key, shared key, body). The offsets are compared and set in the same script
#: as the rows: a pass that lost a race (or was retried after a timeout that had in fact run)
#: changes nothing and returns -1. Otherwise returns the rows held and the rows visitors' shares
#: dropped.
#:
#: The cost is the commands a row needs, so they are few: one HSET (the row) and one ZADD (its
#: key's index) a row, one ZADD per shared key and per partition in the batch (many ids a call),
#: and one ZCARD per key that may crowd.
FORWARD: Final = _PRELUDE + """
local intake = B .. 'intake:' .. ARGV[2]
local share = tonumber(ARGV[3])
local i = 4
local offsets = tonumber(ARGV[i]); i = i + 1
for j = 0, offsets - 1 do
  local there = tonumber(redis.call('HGET', intake, ARGV[i + 3 * j]) or '0')
  if there ~= tonumber(ARGV[i + 3 * j + 1]) then return -1 end
end
for j = 0, offsets - 1 do redis.call('HSET', intake, ARGV[i + 3 * j], ARGV[i + 3 * j + 2]) end
i = i + 3 * offsets
local forgotten = tonumber(ARGV[i]); i = i + 1
for j = 0, forgotten - 1 do redis.call('HDEL', intake, ARGV[i + j]) end
local data = ARGV[i + forgotten]
local erasures = redis.call('ZCARD', B .. 'erasures') > 0
local kept, at = {}, 1
while at <= #data do
  local r = {struct.unpack('<BHi4c0i4c0i4c0i4c0', data, at)}
  at = r[7]
  local erased_at = erasures and r[4] ~= '' and redis.call('ZSCORE', B .. 'erasures', r[4])
  if erased_at and tonumber(r[3]) <= tonumber(erased_at) then
    redis.call('HINCRBY', KEYS[1], 'dropped', 1)  -- forgotten before it got here
  else
    kept[#kept + 1] = r
  end
end
local last = redis.call('INCRBY', B .. 'seq', #kept)
-- Index members by sorted set: {score, member, score, member, ...}, written a chunk a call.
local index, names, crowded = {}, {}, {}
local function add(zkey, id)
  local members = index[zkey]
  if not members then members = {}; index[zkey] = members; names[#names + 1] = zkey end
  members[#members + 1] = id; members[#members + 1] = id
end
for n, r in ipairs(kept) do
  local id = last - #kept + n
  local d, pt, created, ok, sk, body = r[1], r[2], r[3], r[4], r[5], r[6]
  if ok == '' then
    redis.call('HSET', B .. 'r:' .. id, 'b', body, 'c', created, 'd', d, 'pt', pt)
  else
    if sk == '' then
      redis.call('HSET', B .. 'r:' .. id, 'b', body, 'c', created, 'd', d, 'pt', pt, 'ok', ok)
    else
      redis.call('HSET', B .. 'r:' .. id, 'b', body, 'c', created, 'd', d, 'pt', pt, 'ok', ok, 'sk', sk)
      add(B .. 's:' .. sk, id)
    end
    add(B .. 'k:' .. ok, id)
    if d ~= 0 then crowded[ok] = true end
  end
  add(B .. 'p:' .. pt, id)
end
for _, zkey in ipairs(names) do
  local members = index[zkey]
  for from = 1, #members, 1000 do
    redis.call('ZADD', zkey, unpack(members, from, math.min(from + 999, #members)))
  end
end
local held = redis.call('HINCRBY', KEYS[1], 'n', #kept)
local t, dropped = clock(), 0
for key in pairs(crowded) do dropped = dropped + crowd(key, share, t) end
return {held - dropped, dropped}
"""

#: Claim (ARGV[2] 'claim') or look (ARGV[2] 'peek'). ARGV: worker id, heartbeat and partition lease
#: (ms), partitions, limit, lease seconds, owner, most ids read per partition. A claim first keeps
#: the worker's heartbeat, takes the partitions that are its share of the live workers and lets go
#: of the others, then hands out the due rows of its partitions that wait for nothing earlier (the
#: SQLite rule, on cluster-wide key indexes). A claim returns its rows packed in one string
#: (``redis_workers.unpack_rows``); a peek the earliest due_at of a row that waits for nothing, or ''.
CLAIM: Final = _PRELUDE + """
local mode, me = ARGV[2], ARGV[3]
local lease_ms, partitions = tonumber(ARGV[4]), tonumber(ARGV[5])
local limit, lease, owner, scan = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8], tonumber(ARGV[9])
local t = clock()
local t_ms = math.floor(t * 1000)
local mine = {}
if mode == 'claim' then
  redis.call('ZADD', B .. 'workers', t_ms + lease_ms, me)
  redis.call('ZREMRANGEBYSCORE', B .. 'workers', '-inf', t_ms)
  local live = redis.call('ZRANGE', B .. 'workers', 0, -1)
  table.sort(live)
  local index = 0
  for n, worker in ipairs(live) do if worker == me then index = n - 1 end end
  for p = 0, partitions - 1 do
    local lease_key = B .. 'lease:' .. p
    local holder = redis.call('GET', lease_key)
    if p % #live == index then
      if holder == me then redis.call('PEXPIRE', lease_key, lease_ms); mine[#mine + 1] = p
      elseif not holder then redis.call('SET', lease_key, me, 'PX', lease_ms); mine[#mine + 1] = p end
    elseif holder == me then
      redis.call('DEL', lease_key)  -- another live worker's share now
    end
  end
else
  for p = 0, partitions - 1 do mine[#mine + 1] = p end
end
local function first(zkey)
  local found = redis.call('ZRANGE', zkey, 0, 0)
  return found[1] and tonumber(found[1]) or nil
end
-- May row ``sid`` go now, as far as order goes? (The SQLite outbox's rule; ``seen``: keys met.)
local seen = {}
local function waits_for_nothing(sid, ok, sk)
  if not ok then return true end
  if seen[ok] then return false end  -- an earlier row of its key came first in this walk
  seen[ok] = true
  local id = tonumber(sid)
  if first(B .. 'k:' .. ok) ~= id then return false end
  if sk then local h = first(B .. 'k:' .. sk); if h ~= nil and h < id then return false end end
  local h = first(B .. 's:' .. ok)
  return h == nil or h > id
end
-- The partitions' ids merged in id order, read in chunks, at most ``scan`` per partition.
local chunks, at, read = {}, {}, {}
local function next_id()
  local best, best_p = nil, nil
  for _, p in ipairs(mine) do
    if at[p] == nil or (at[p] > #chunks[p] and #chunks[p] == 64 and read[p] < scan) then
      chunks[p] = redis.call('ZRANGE', B .. 'p:' .. p, read[p] or 0, (read[p] or 0) + 63)
      read[p], at[p] = (read[p] or 0) + #chunks[p], 1
    end
    local sid = chunks[p][at[p]]
    if sid and (best == nil or tonumber(sid) < tonumber(best)) then best, best_p = sid, p end
  end
  if best_p then at[best_p] = at[best_p] + 1 end
  return best
end
local found, earliest = {}, nil
while mode == 'peek' or #found < limit do
  local sid = next_id()
  if not sid then break end
  local v = redis.call('HMGET', B .. 'r:' .. sid, 'ok', 'sk', 'u')
  if waits_for_nothing(sid, v[1], v[2]) then
    local due = tonumber(v[3] or '0')
    if mode == 'peek' then
      if earliest == nil or due < earliest then earliest = due end
    elseif due <= t then
      found[#found + 1] = sid
    end
  end
end
if mode == 'peek' then
  if earliest == nil then return '' end
  return tostring(math.max(0, earliest - t))
end
local rows = {}
local function text(s) return struct.pack('<I4', #s) .. s end
for n = 1, #found do
  local row = B .. 'r:' .. found[n]
  redis.call('HSET', row, 'u', tostring(t + lease), 'o', owner)
  local attempts = redis.call('HINCRBY', row, 'a', 1)
  redis.call('ZADD', B .. 'fly', t + lease, found[n])
  local v = redis.call('HMGET', row, 'k', 'm', 'p', 'b', 'ok', 'c')
  rows[#rows + 1] = struct.pack('<I4', attempts) .. text(found[n]) .. text(v[1] or 'event') ..
    text(v[2] or 'POST') .. text(v[3] or '') .. text(v[4]) .. text(v[5] or '') .. text(v[6])
end
return table.concat(rows)
"""

#: Rows delivered (ARGV[2..]): gone, counted, whoever holds them.
ACK: Final = _PRELUDE + """
for i = 2, #ARGV do
  local v = redis.call('HMGET', B .. 'r:' .. ARGV[i], 'ok', 'sk', 'pt', 'st')
  if v[3] then
    unindex(ARGV[i], v[1], v[2], v[3])
    if v[4] == '2' then redis.call('ZREM', B .. 'dead', ARGV[i]) end
    redis.call('DEL', B .. 'r:' .. ARGV[i])
    redis.call('HINCRBY', KEYS[1], 'n', -1)
    redis.call('HINCRBY', KEYS[1], 'delivered', 1)
  end
end
return 0
"""

# A settle applies to an unfinished row, and with an owner (ARGV[3]) only while that owner holds it.
_SETTLE_PRELUDE: Final = _PRELUDE + """
local function held(id, owner)
  local v = redis.call('HMGET', B .. 'r:' .. id, 'st', 'o')
  return (v[1] or '0') == '0' and (owner == '' or v[2] == owner)
end
"""

#: Rows handed back unsent: ARGV delay, owner, ids. Not an attempt.
RELEASE: Final = _SETTLE_PRELUDE + """
local due = clock() + tonumber(ARGV[2])
for i = 4, #ARGV do
  if held(ARGV[i], ARGV[3]) and not erased(ARGV[i]) then
    local row = B .. 'r:' .. ARGV[i]
    local attempts = tonumber(redis.call('HGET', row, 'a') or '0')
    redis.call('HSET', row, 'u', tostring(due), 'a', math.max(attempts - 1, 0))
    redis.call('HDEL', row, 'o')
    redis.call('ZREM', B .. 'fly', ARGV[i])
  end
end
return 0
"""

#: A failed attempt: ARGV delay, owner, id, error, status ('' for none).
RETRY_LATER: Final = _SETTLE_PRELUDE + """
local t = clock()
if held(ARGV[4], ARGV[3]) and not erased(ARGV[4]) then
  local row = B .. 'r:' .. ARGV[4]
  local due = tostring(t + tonumber(ARGV[2]))
  redis.call('HSET', row, 'u', due, 'le', ARGV[5], 'ls', ARGV[6], 'f', tostring(t))
  redis.call('HDEL', row, 'o')
  redis.call('ZREM', B .. 'fly', ARGV[4])
end
redis.call('HSET', KEYS[1], 'last_error', ARGV[5])
return 0
"""

#: Refused for good: ARGV unused, owner, id, error, status, answer ('' for none).
DEAD_LETTER: Final = _SETTLE_PRELUDE + """
local t = clock()
if held(ARGV[4], ARGV[3]) and not erased(ARGV[4]) then
  local row = B .. 'r:' .. ARGV[4]
  local v = redis.call('HMGET', row, 'ok', 'sk', 'pt')
  unindex(ARGV[4], v[1], v[2], v[3])
  redis.call('HSET', row, 'st', 2, 'le', ARGV[5], 'ls', ARGV[6], 'rb', ARGV[7], 'f', tostring(t))
  redis.call('HDEL', row, 'o')
  redis.call('ZADD', B .. 'dead', t, ARGV[4])
end
redis.call('HSET', KEYS[1], 'last_error', ARGV[5])
return 0
"""

#: Dead letters queued again (ARGV[2] 'all', or the ids from ARGV[3]); returns how many.
RETRY_DEAD: Final = _PRELUDE + """
local ids = {}
if ARGV[2] == 'all' then ids = redis.call('ZRANGE', B .. 'dead', 0, -1)
else for i = 3, #ARGV do ids[#ids + 1] = ARGV[i] end end
local t, count = clock(), 0
for _, id in ipairs(ids) do
  local row = B .. 'r:' .. id
  local v = redis.call('HMGET', row, 'ok', 'sk', 'pt', 'st')
  if v[4] == '2' then
    redis.call('HSET', row, 'st', 0, 'a', 0, 'u', tostring(t))
    redis.call('HDEL', row, 'o')
    redis.call('ZREM', B .. 'dead', id)
    reindex(id, v[1], v[2], v[3])
    count = count + 1
  end
end
return count
"""

#: An erasure of keys (ARGV[2..]): unsent rows go; a row in flight is marked, and goes when it
#: settles; journaled records of these keys made before now are dropped as they come in. Returns
#: how many rows were dropped or marked.
DROP_UNSENT: Final = _PRELUDE + """
local t, count, wanted = clock(), 0, {}
redis.call('ZREMRANGEBYSCORE', B .. 'erasures', '-inf', t - 86400)
for i = 2, #ARGV do
  wanted[ARGV[i]] = true
  redis.call('ZADD', B .. 'erasures', t, ARGV[i])
  for _, id in ipairs(redis.call('ZRANGE', B .. 'k:' .. ARGV[i], 0, -1)) do
    local v = redis.call('HMGET', B .. 'r:' .. id, 'o', 'u')
    if v[1] and tonumber(v[2]) > t then
      redis.call('HSET', B .. 'r:' .. id, 'e', 1)
      count = count + 1
    else
      count = count + drop(id)
    end
  end
end
for _, id in ipairs(redis.call('ZRANGE', B .. 'dead', 0, -1)) do
  if wanted[redis.call('HGET', B .. 'r:' .. id, 'ok') or ''] then count = count + drop(id) end
end
return count
"""

#: Every backoff ended (ARGV[2]: partitions); rows in flight are left to their owners.
RETRY_NOW: Final = _PRELUDE + """
local t, count = clock(), 0
for p = 0, tonumber(ARGV[2]) - 1 do
  for _, id in ipairs(redis.call('ZRANGE', B .. 'p:' .. p, 0, -1)) do
    local v = redis.call('HMGET', B .. 'r:' .. id, 'o', 'u')
    if not v[1] and tonumber(v[2] or '0') > t then
      redis.call('HSET', B .. 'r:' .. id, 'u', tostring(t)); count = count + 1
    end
  end
end
return count
"""

#: What the outbox holds (ARGV[2]: partitions): unfinished, in flight, dead, the oldest unfinished
#: row's created_at ('' for none), the meta hash's counts (flat), all as of one moment.
STATS: Final = _PRELUDE + """
local t, unfinished, oldest = clock(), 0, nil
for p = 0, tonumber(ARGV[2]) - 1 do
  unfinished = unfinished + redis.call('ZCARD', B .. 'p:' .. p)
  local head = redis.call('ZRANGE', B .. 'p:' .. p, 0, 0)
  if head[1] then
    local created = tonumber(redis.call('HGET', B .. 'r:' .. head[1], 'c'))
    if oldest == nil or created < oldest then oldest = created end
  end
end
local flying = redis.call('ZCOUNT', B .. 'fly', '(' .. t, '+inf')
return {unfinished, flying, redis.call('ZCARD', B .. 'dead'), oldest and tostring(oldest) or '',
        tostring(t), redis.call('HGETALL', KEYS[1])}
"""

#: A pause shared by every worker: ARGV[2] milliseconds; never shortens a longer one already set.
PAUSE: Final = """
local left = redis.call('PTTL', KEYS[1])
if tonumber(ARGV[2]) > left then redis.call('SET', KEYS[1], '1', 'PX', ARGV[2]) end
return 0
"""

#: A worker leaving (ARGV worker id, partitions): its heartbeat and partition leases go at once.
LEAVE: Final = """
local B = ARGV[1]
redis.call('ZREM', B .. 'workers', ARGV[2])
for p = 0, tonumber(ARGV[3]) - 1 do
  if redis.call('GET', B .. 'lease:' .. p) == ARGV[2] then redis.call('DEL', B .. 'lease:' .. p) end
end
return 0
"""

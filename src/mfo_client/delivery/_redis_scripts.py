"""The Lua scripts of the Redis store: every operation that touches more than one key is one
script, so it is atomic (Redis runs a script alone) and costs one round trip.

The key layout is described in `_redis`. Every script takes the key prefix as `ARGV[1]` and
builds its keys from it; none is declared in KEYS, so the store runs on a standalone Redis (or
a primary with replicas), not on Redis Cluster. Times arrive as the caller's decimal strings and
are stored as given: Lua's `tostring` would round a unix time to 14 digits. Lease idle times are
the server's own (stream PEL idle, in milliseconds).

Job hash fields: `k` kind, `e` event id, `a` attempts, `s` state (`p` pending, `d` done, `x`
dead), `x` its stream entry while it has one, `t` the current lease token, `o` the lease owner,
`q` queued at, `f` finished at (done or failed), `err` last error, `dk` its dedupe key. Event
hash fields: `s` source, `b` body (JSON), `r` raw body, `h` headers (JSON), `t` received at, `n`
jobs that still refer to it, `dv` its delivery-id key.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ACCEPT",
    "GET_DEAD",
    "KINDS",
    "LEASE",
    "LIST_DEAD",
    "NEXT_DUE",
    "PRUNE",
    "PURGE",
    "RENEW",
    "REPLAY",
    "SETTLE",
    "STATS",
    "TIDY",
]

_KEYS: Final = """
local P = ARGV[1]
local GROUP = 'workers'
local PENDING = P .. ':pending'
local KINDS = P .. ':kinds'
local DEAD = P .. ':dead'
local DEADN = P .. ':deadn'
local function stream(kind) return P .. ':q:' .. kind end
local function leases(kind) return P .. ':lease:' .. kind end
local function delayed(kind) return P .. ':delayed:' .. kind end
local function openjobs(kind) return P .. ':open:' .. kind end
local function donejobs(kind) return P .. ':done:' .. kind end
local function cursor(kind) return P .. ':cursor:' .. kind end
local function job(id) return P .. ':job:' .. id end
local function event(id) return P .. ':ev:' .. id end
"""

_ENQUEUE: Final = """
local function enqueue(kind, id)
  local q = stream(kind)
  if redis.call('EXISTS', q) == 0 then
    redis.call('XGROUP', 'CREATE', q, GROUP, '0', 'MKSTREAM')
  end
  redis.call('HSET', job(id), 'x', redis.call('XADD', q, '*', 'j', id))
end
"""

_DROP_JOB: Final = """
-- Delete a finished job; its dedupe key goes unless it still counts (taken after `key_cutoff`:
-- it then expires when it would stop counting), and its event goes with its last job.
-- Returns 1 if the event went.
local function drop_job(id, key_cutoff)
  local j = redis.call('HMGET', job(id), 'e', 'dk')
  redis.call('DEL', job(id))
  if j[2] and j[2] ~= '' then
    local held = redis.call('HMGET', j[2], 'j', 'c')
    if held[1] == id then
      local keep_ms = math.floor((tonumber(held[2]) - key_cutoff) * 1000)
      if keep_ms > 0 then
        redis.call('PEXPIRE', j[2], keep_ms)
      else
        redis.call('DEL', j[2])
      end
    end
  end
  local ev = event(j[1] or '')
  if not j[1] or redis.call('EXISTS', ev) == 0 then return 0 end
  if redis.call('HINCRBY', ev, 'n', -1) > 0 then return 0 end
  local dv = redis.call('HGET', ev, 'dv')
  if dv and dv ~= '' and redis.call('GET', dv) == j[1] then redis.call('DEL', dv) end
  redis.call('DEL', ev)
  return 1
end
"""

_READ_ONLY: Final = "#!lua flags=no-writes\n"
"""Read-only scripts still run when Redis refuses writes (maxmemory reached, a replica), so an
operator can look at the outbox exactly when it matters."""


ACCEPT: Final = (
    _KEYS
    + _ENQUEUE
    + """
-- ARGV: prefix, now, key cutoff, max_pending, forward kind, source, has delivery id, delivery
-- id, id, renamed id, last-resort id, body, raw body, headers, received at, then per flow job:
-- id, kind, has key, key.
local now, cutoff, max_pending = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local forward, source = ARGV[5], ARGV[6]

-- A duplicate still makes a write that changes nothing: the WAIT that follows then waits for
-- this connection's replication offset, which (the replication stream being ordered) covers
-- the original write, so a retry of an event the replicas never confirmed is not answered 2xx.
local function duplicate(id)
  redis.call('INCRBY', PENDING, 0)
  return {'dup', id}
end

local dlv = false
if ARGV[7] == '1' then
  dlv = P .. ':dlv:' .. string.len(source) .. ':' .. source .. ':' .. ARGV[8]
  local seen = redis.call('GET', dlv)
  if seen then return duplicate(seen) end
end

-- The source of the event with this id; '' if a job has the id; false if it is free.
local function owner(id)
  local s = redis.call('HGET', event(id), 's')
  if s then return s end
  if redis.call('EXISTS', job(id)) == 1 then return '' end
  return false
end

local event_id = ARGV[9]
local held = owner(event_id)
if held and held ~= source then
  event_id = ARGV[10]
  held = owner(event_id)
  if held and held ~= source then
    event_id = ARGV[11]
    held = false
  end
end
if held then return duplicate(event_id) end

local pending = tonumber(redis.call('GET', PENDING) or '0')
if pending >= max_pending then return {'full', tostring(pending)} end

local function key_live(job_id, created)
  if created and created >= cutoff then return true end
  local st = redis.call('HMGET', job(job_id), 's', 'f')
  if not st[1] then return false end
  if st[1] == 'p' then return true end
  return tonumber(st[2]) >= cutoff
end

-- Plan the flow jobs before writing anything: a script's writes are not rolled back.
local results, planned = {}, {}
local ids, keys_here = {[event_id] = true}, {}
local i = 16
while i <= #ARGV do
  local id, kind, has_key, key = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  i = i + 4
  local dkey, hit = false, false
  if has_key == '1' then
    dkey = P .. ':dk:' .. string.len(kind) .. ':' .. kind .. ':' .. key
    hit = keys_here[dkey] or false
    if not hit then
      local d = redis.call('HMGET', dkey, 'j', 'c')
      if d[1] and key_live(d[1], tonumber(d[2])) then hit = d[1] end
    end
  end
  if hit then
    results[#results + 1] = hit
    results[#results + 1] = '1'
  else
    if ids[id] or redis.call('EXISTS', job(id)) == 1 or redis.call('EXISTS', event(id)) == 1 then
      return {'taken', id, kind}
    end
    ids[id] = true
    if dkey then keys_here[dkey] = id end
    planned[#planned + 1] = {id, kind, dkey}
    results[#results + 1] = id
    results[#results + 1] = '0'
  end
end

local function add_job(id, kind)
  redis.call('HSET', job(id), 'k', kind, 'e', event_id, 'a', 0, 's', 'p', 'q', now)
  redis.call('ZADD', openjobs(kind), now, id)
  redis.call('SADD', KINDS, kind)
  enqueue(kind, id)
end

redis.call('HSET', event(event_id), 's', source, 'b', ARGV[12], 'r', ARGV[13], 'h', ARGV[14],
  't', ARGV[15], 'n', 1 + #planned, 'dv', dlv or '')
if dlv then redis.call('SET', dlv, event_id) end
add_job(event_id, forward)
for _, p in ipairs(planned) do
  add_job(p[1], p[2])
  if p[3] then
    redis.call('HSET', p[3], 'j', p[1], 'c', now)
    redis.call('PERSIST', p[3])
    redis.call('HSET', job(p[1]), 'dk', p[3])
  end
end
redis.call('INCRBY', PENDING, 1 + #planned)
local reply = {'ok', event_id}
for _, v in ipairs(results) do reply[#reply + 1] = v end
return reply
"""
)


LEASE: Final = (
    _KEYS
    + _ENQUEUE
    + """
-- ARGV: prefix, now, owner, limit, lease ms, token base, most delayed jobs to promote, kinds...
-- Returns per lease: id, kind, event id, body, attempts, token, source.
-- A job whose event is gone (only an evicting maxmemory-policy removes one) goes to the dead
-- letters instead, where `mfo dlq` shows it, rather than failing every lease that meets it.
local now, owner, limit = ARGV[2], ARGV[3], tonumber(ARGV[4])
local lease_ms, token_base, promote = ARGV[5], ARGV[6], tonumber(ARGV[7])
local kinds = {}
for i = 8, #ARGV do kinds[#kinds + 1] = ARGV[i] end
local out, taken = {}, 0

local function take(kind, q, entry, fields)
  local id = fields and fields[2]
  local st = id and redis.call('HMGET', job(id), 's', 'x', 'e', 'a')
  if not st or st[1] ~= 'p' or st[2] ~= entry then
    -- Its job was settled or removed behind the stream's back: nothing to do for it.
    redis.call('XACK', q, GROUP, entry)
    redis.call('XDEL', q, entry)
    redis.call('HDEL', leases(kind), entry)
    return
  end
  local ev = redis.call('HMGET', event(st[3]), 'b', 's')
  if not ev[1] then
    redis.call('XACK', q, GROUP, entry)
    redis.call('XDEL', q, entry)
    redis.call('HDEL', leases(kind), entry)
    redis.call('HSET', job(id), 's', 'x', 'f', now, 't', '', 'x', '', 'err',
      'its event ' .. st[3] .. ' is missing from Redis (evicted? the store needs '
      .. 'maxmemory-policy noeviction)')
    redis.call('ZREM', openjobs(kind), id)
    redis.call('ZADD', DEAD, redis.call('INCR', P .. ':seq'), id)
    redis.call('HINCRBY', DEADN, kind, 1)
    redis.call('DECR', PENDING)
    return
  end
  taken = taken + 1
  local token = token_base .. ':' .. taken
  redis.call('HSET', job(id), 't', token, 'o', owner)
  redis.call('HSET', leases(kind), entry, lease_ms)
  local row = {id, kind, st[3], ev[1], st[4], token, ev[2] or ''}
  for _, v in ipairs(row) do out[#out + 1] = v end
end

-- Delayed jobs that are due go back into their stream.
for _, kind in ipairs(kinds) do
  local d = delayed(kind)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', d, '-inf', now, 'LIMIT', 0, promote)) do
    redis.call('ZREM', d, id)
    if redis.call('HGET', job(id), 's') == 'p' then enqueue(kind, id) end
  end
end

-- Entries idle longer than a lease: their holder died or stalled. The scan goes on where the
-- last one stopped, so a long PEL is covered over a few calls.
for _, kind in ipairs(kinds) do
  local q = stream(kind)
  if taken < limit and redis.call('EXISTS', q) == 1 then
    local at = redis.call('GET', cursor(kind)) or '0-0'
    for _ = 1, 16 do
      local r = redis.call('XAUTOCLAIM', q, GROUP, owner, lease_ms, at, 'COUNT', limit - taken)
      at = r[1]
      for _, e in ipairs(r[2]) do take(kind, q, e[1], e[2]) end
      if at == '0-0' or taken >= limit then break end
    end
    redis.call('SET', cursor(kind), at)
  end
end

local function entry_order(a, b)
  return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2])
end

local function last_delivered(q)
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', q)) do
    local f = {}
    for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
    if f['name'] == GROUP then return f['last-delivered-id'] end
  end
  return '0-0'
end

-- New entries, the oldest first across the kinds: with several kinds, peek first, then read
-- exactly the chosen number from each stream.
local want = {}
if taken < limit then
  if #kinds == 1 then
    want[kinds[1]] = limit - taken
  else
    local peeked = {}
    for _, kind in ipairs(kinds) do
      local q = stream(kind)
      if redis.call('EXISTS', q) == 1 then
        local after = '(' .. last_delivered(q)
        for _, e in ipairs(redis.call('XRANGE', q, after, '+', 'COUNT', limit - taken)) do
          local ms, seq = string.match(e[1], '^(%d+)-(%d+)$')
          peeked[#peeked + 1] = {tonumber(ms), tonumber(seq), kind}
        end
      end
    end
    table.sort(peeked, entry_order)
    for i = 1, math.min(#peeked, limit - taken) do
      local kind = peeked[i][3]
      want[kind] = (want[kind] or 0) + 1
    end
  end
end
local fresh = {}
for _, kind in ipairs(kinds) do
  local q = stream(kind)
  if want[kind] and redis.call('EXISTS', q) == 1 then
    local r = redis.call('XREADGROUP', 'GROUP', GROUP, owner, 'COUNT', want[kind],
      'STREAMS', q, '>')
    if r then
      for _, e in ipairs(r[1][2]) do
        local ms, seq = string.match(e[1], '^(%d+)-(%d+)$')
        fresh[#fresh + 1] = {tonumber(ms), tonumber(seq), kind, q, e[1], e[2]}
      end
    end
  end
end
table.sort(fresh, entry_order)
for _, f in ipairs(fresh) do take(f[3], f[4], f[5], f[6]) end
return out
"""
)


RENEW: Final = (
    _KEYS
    + """
-- ARGV: prefix, job id, token, lease ms. XCLAIM by the holder resets the entry's idle time.
local j = job(ARGV[2])
local st = redis.call('HMGET', j, 's', 't', 'x', 'k', 'o')
if st[1] ~= 'p' or st[2] ~= ARGV[3] or not st[3] or st[3] == '' then return 0 end
local claimed = redis.call('XCLAIM', stream(st[4]), GROUP, st[5], 0, st[3], 'JUSTID')
if #claimed == 0 then return 0 end
redis.call('HSET', leases(st[4]), st[3], ARGV[4])
return 1
"""
)


SETTLE: Final = (
    _KEYS
    + _ENQUEUE
    + """
-- ARGV: prefix, job id, token, mode (complete, retry, release, dead), now, due at, error.
-- A token that is not the job's current one settles nothing.
local id, token, mode, now, due, err = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local j = job(id)
local st = redis.call('HMGET', j, 's', 't', 'x', 'k', 'a')
if st[1] ~= 'p' or st[2] ~= token then return 0 end
local kind = st[4]
if st[3] and st[3] ~= '' then
  local q = stream(kind)
  redis.call('XACK', q, GROUP, st[3])
  redis.call('XDEL', q, st[3])
  redis.call('HDEL', leases(kind), st[3])
end
if mode == 'complete' then
  redis.call('HSET', j, 's', 'd', 'f', now, 't', '', 'x', '')
  redis.call('ZREM', openjobs(kind), id)
  redis.call('ZADD', donejobs(kind), now, id)
  redis.call('DECR', PENDING)
elseif mode == 'dead' then
  local seq = redis.call('INCR', P .. ':seq')
  redis.call('HSET', j, 's', 'x', 'f', now, 't', '', 'x', '', 'a', tonumber(st[5]) + 1,
    'err', err)
  redis.call('ZREM', openjobs(kind), id)
  redis.call('ZADD', DEAD, seq, id)
  redis.call('HINCRBY', DEADN, kind, 1)
  redis.call('DECR', PENDING)
else
  if mode == 'retry' then
    redis.call('HSET', j, 'a', tonumber(st[5]) + 1, 'err', err)
  end
  redis.call('HSET', j, 't', '', 'x', '')
  if tonumber(due) <= tonumber(now) then
    enqueue(kind, id)
  else
    redis.call('ZADD', delayed(kind), due, id)
  end
end
return 1
"""
)


NEXT_DUE: Final = (
    _READ_ONLY
    + _KEYS
    + """
-- ARGV: prefix, then pairs of kind and the lease ms this caller leases it with ('' if it has
-- not): an expired lease is due once the caller's own lease call would claim it.
-- Returns: 1 if an entry is ready now, the fewest ms until a lease expires (or nil), the
-- earliest due time of a delayed job (or nil).
local ready, left, due = 0, false, false
for i = 2, #ARGV, 2 do
  local kind, own_ms = ARGV[i], tonumber(ARGV[i + 1])
  local q = stream(kind)
  if redis.call('EXISTS', q) == 1 then
    local n = redis.call('XPENDING', q, GROUP)[1]
    if redis.call('XLEN', q) > n then ready = 1 end
    if n > 0 and ready == 0 then
      local lm = leases(kind)
      for _, p in ipairs(redis.call('XPENDING', q, GROUP, '-', '+', n)) do
        local ms = own_ms or tonumber(redis.call('HGET', lm, p[1]) or '0')
        local rest = ms - p[3]
        if not left or rest < left then left = rest end
      end
    end
  end
  local d = redis.call('ZRANGE', delayed(kind), 0, 0, 'WITHSCORES')
  if d[2] and (not due or tonumber(d[2]) < tonumber(due)) then due = d[2] end
end
return {ready, left, due}
"""
)


STATS: Final = (
    _READ_ONLY
    + _KEYS
    + """
-- ARGV: prefix, '1' for every kind or '0', kinds... Returns: open jobs, in flight, done, dead,
-- the earliest queued time of an open job (or nil).
local kinds = {}
if ARGV[2] == '1' then
  kinds = redis.call('SMEMBERS', KINDS)
else
  for i = 3, #ARGV do kinds[#kinds + 1] = ARGV[i] end
end
local open, in_flight, done, dead, oldest = 0, 0, 0, 0, false
local seen = {}
for _, kind in ipairs(kinds) do
  if not seen[kind] then
    seen[kind] = true
    open = open + redis.call('ZCARD', openjobs(kind))
    done = done + redis.call('ZCARD', donejobs(kind))
    dead = dead + tonumber(redis.call('HGET', DEADN, kind) or '0')
    local q = stream(kind)
    if redis.call('EXISTS', q) == 1 then
      local n = redis.call('XPENDING', q, GROUP)[1]
      if n > 0 then
        local lm = leases(kind)
        for _, p in ipairs(redis.call('XPENDING', q, GROUP, '-', '+', n)) do
          if p[3] < tonumber(redis.call('HGET', lm, p[1]) or '0') then
            in_flight = in_flight + 1
          end
        end
      end
    end
    local o = redis.call('ZRANGE', openjobs(kind), 0, 0, 'WITHSCORES')
    if o[2] and (not oldest or tonumber(o[2]) < tonumber(oldest)) then oldest = o[2] end
  end
end
return {open, in_flight, done, dead, oldest}
"""
)


KINDS: Final = (
    _READ_ONLY
    + _KEYS
    + """
local out = {}
for _, kind in ipairs(redis.call('SMEMBERS', KINDS)) do
  if redis.call('ZCARD', openjobs(kind)) > 0
      or tonumber(redis.call('HGET', DEADN, kind) or '0') > 0 then
    out[#out + 1] = kind
  end
end
return out
"""
)


_DEAD_ROW: Final = """
-- id, source, body, attempts, last error, failed at, received at, raw body, kind, event id
local function dead_row(id, out)
  local j = redis.call('HMGET', job(id), 'k', 'e', 'a', 'err', 'f', 's')
  if j[6] ~= 'x' then return false end
  local ev = redis.call('HMGET', event(j[2]), 's', 'b', 't', 'r')
  local row = {id, ev[1] or '', ev[2] or '{}', j[3], j[4] or '', j[5], ev[3] or '0',
    ev[4] or '', j[1], j[2]}
  for _, v in ipairs(row) do out[#out + 1] = v end
  return true
end
"""

LIST_DEAD: Final = (
    _READ_ONLY
    + _KEYS
    + _DEAD_ROW
    + """
-- ARGV: prefix, limit, after ('' for the start), '1' for every kind or '0', kinds...
local limit, after = tonumber(ARGV[2]), ARGV[3]
local want = false
if ARGV[4] == '0' then
  want = {}
  for i = 5, #ARGV do want[ARGV[i]] = true end
end
local start = '-inf'
if after ~= '' then
  local s = redis.call('ZSCORE', DEAD, after)
  if not s then return {'gone'} end
  start = '(' .. s
end
local out, n = {'ok'}, 0
while n < limit do
  local page = redis.call('ZRANGEBYSCORE', DEAD, start, '+inf', 'WITHSCORES', 'LIMIT', 0, 256)
  if #page == 0 then break end
  for i = 1, #page, 2 do
    start = '(' .. page[i + 1]
    local kind = redis.call('HGET', job(page[i]), 'k')
    if (not want or want[kind]) and dead_row(page[i], out) then
      n = n + 1
      if n >= limit then break end
    end
  end
end
return out
"""
)


GET_DEAD: Final = (
    _READ_ONLY
    + _KEYS
    + _DEAD_ROW
    + """
local out = {}
dead_row(ARGV[2], out)
return out
"""
)


REPLAY: Final = (
    _KEYS
    + _ENQUEUE
    + """
-- ARGV: prefix, now, '1' to replay the first `count` dead letters or '0' for the ids given,
-- count, ids... Replays in the order they failed. Returns: how many were replayed, how many
-- were looked at (a dead letter whose job is gone is only forgotten).
local now = ARGV[2]
local ids = {}
if ARGV[3] == '1' then
  ids = redis.call('ZRANGE', DEAD, 0, tonumber(ARGV[4]) - 1)
else
  local found, seen = {}, {}
  for i = 5, #ARGV do
    local s = not seen[ARGV[i]] and redis.call('ZSCORE', DEAD, ARGV[i])
    seen[ARGV[i]] = true
    if s then found[#found + 1] = {tonumber(s), ARGV[i]} end
  end
  table.sort(found, function(a, b) return a[1] < b[1] end)
  for _, f in ipairs(found) do ids[#ids + 1] = f[2] end
end
local replayed = 0
for _, id in ipairs(ids) do
  local kind = redis.call('HGET', job(id), 'k')
  redis.call('ZREM', DEAD, id)
  if kind then
    redis.call('HINCRBY', DEADN, kind, -1)
    redis.call('HSET', job(id), 's', 'p', 'a', 0, 'q', now, 't', '')
    redis.call('HDEL', job(id), 'f', 'err')
    redis.call('ZADD', openjobs(kind), now, id)
    redis.call('SADD', KINDS, kind)
    enqueue(kind, id)
    replayed = replayed + 1
  end
end
redis.call('INCRBY', PENDING, replayed)
return {replayed, #ids}
"""
)


PURGE: Final = (
    _KEYS
    + _DROP_JOB
    + """
-- ARGV: prefix, key cutoff, failed before ('inf' for all), after seq, count.
-- Returns: purged, the last seq looked at, how many were looked at. A dead letter whose job is
-- gone is only forgotten (it counted under no known kind).
local key_cutoff, before = tonumber(ARGV[2]), tonumber(ARGV[3])
local page = redis.call('ZRANGEBYSCORE', DEAD, '(' .. ARGV[4], '+inf', 'WITHSCORES', 'LIMIT',
  0, tonumber(ARGV[5]))
local purged, last = 0, ARGV[4]
for i = 1, #page, 2 do
  local id = page[i]
  last = page[i + 1]
  local j = redis.call('HMGET', job(id), 'f', 'k')
  if not j[2] then
    redis.call('ZREM', DEAD, id)
  elseif tonumber(j[1] or '0') < before then
    redis.call('ZREM', DEAD, id)
    redis.call('HINCRBY', DEADN, j[2], -1)
    drop_job(id, key_cutoff)
    purged = purged + 1
  end
end
return {purged, last, #page / 2}
"""
)


PRUNE: Final = (
    _KEYS
    + _DROP_JOB
    + """
-- ARGV: prefix, done before, count. Returns: jobs deleted (at most count), events deleted.
local before, count = tonumber(ARGV[2]), tonumber(ARGV[3])
local jobs, events = 0, 0
for _, kind in ipairs(redis.call('SMEMBERS', KINDS)) do
  if jobs >= count then break end
  local d = donejobs(kind)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', d, '-inf', '(' .. ARGV[2], 'LIMIT', 0,
      count - jobs)) do
    redis.call('ZREM', d, id)
    events = events + drop_job(id, before)
    jobs = jobs + 1
  end
end
return {jobs, events}
"""
)


TIDY: Final = (
    _KEYS
    + """
-- ARGV: prefix, consumer idle ms. Forgets consumers that hold nothing and have been idle for a
-- while (each worker has its own name, so names pile up over restarts), and the keys of kinds
-- with nothing left in them.
for _, kind in ipairs(redis.call('SMEMBERS', KINDS)) do
  local q = stream(kind)
  if redis.call('EXISTS', q) == 1 then
    for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', q, GROUP)) do
      local f = {}
      for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
      if f['pending'] == 0 and f['idle'] > tonumber(ARGV[2]) then
        redis.call('XGROUP', 'DELCONSUMER', q, GROUP, f['name'])
      end
    end
  end
  if redis.call('ZCARD', openjobs(kind)) == 0 and redis.call('ZCARD', donejobs(kind)) == 0
      and redis.call('ZCARD', delayed(kind)) == 0
      and tonumber(redis.call('HGET', DEADN, kind) or '0') == 0 then
    redis.call('DEL', q, leases(kind), cursor(kind))
    redis.call('HDEL', DEADN, kind)
    redis.call('SREM', KINDS, kind)
  end
end
return 0
"""
)

"""The Lua scripts of the Redis run history (`_history_redis`), each atomic on the server.

`WRITE` is every write, by its first argument: `start` (a new run, or a resume of a known one:
see `RunHistory.start_run`), `task`, `finish`, `cancel`. Arguments that may be None come as `-`,
or `=` and the value (a script cannot take a nil). A run moves between the index sets (`status:`,
`flow:`, `trigger:`, `event:`, `children:`) in the same call that changes its hash, keeping its
score, the start of its first attempt. `task` and `finish` take the writer's fencing token (or
`-`), and so does `cancel`: one that is not the run's `token` leaves everything as it was. They
answer 1 (written), 0 (no such run; for `cancel`, nor one to cancel) or -1 (a stale token).

`LIST` and `PRUNE` look at a bounded number of index entries per call and say where they stopped,
so a caller goes on in further calls and no call holds the server for long:

- `LIST` walks the smallest index the filters name from the newest run, checks the other filters
  on each run's hash, and stops once it has `want` runs (and those tied with the last: the
  score of the last is the cutoff the next calls get), at the end of the index, or after
  `scan` entries. Where it stopped is a score and how many entries of that score it has seen
  (scores tie, and a rank would shift as runs are added): the next call starts there.
- `PRUNE` walks one status index from the oldest run up to the cutoff and deletes the runs that
  ended before the cutoff, are no child run and are not paused, each with its descendants
  (deepest first, through the `children:` sets), at most `budget` runs and `scan` entries per
  call. The entries it keeps stay in the index, the ones it deletes leave it, so where it
  stopped is the count of entries kept (`skip`). An entry kept by this pass that a later call
  deletes as a descendant shifts that count by one: a run may then wait for the next pass.
"""

from __future__ import annotations

from typing import Final

__all__ = ["LIST", "PRUNE", "WRITE"]

WRITE: Final = """
local op, p, id = ARGV[1], ARGV[2], ARGV[3]
local run = p .. ':runs:run:' .. id
local function opt(v) if v == '-' then return false end return string.sub(v, 2) end
local function put(field, value)
  if value then redis.call('HSET', run, field, value) else redis.call('HDEL', run, field) end
end
local function move(kind, before, after, score)
  if before == after then return end
  if before then redis.call('ZREM', p .. ':runs:' .. kind .. ':' .. before, id) end
  if after then redis.call('ZADD', p .. ':runs:' .. kind .. ':' .. after, score, id) end
end
if op == 'start' then
  local token, flow, started = ARGV[4], ARGV[5], ARGV[9]
  local trigger, event, parent, parent_task = opt(ARGV[10]), opt(ARGV[11]), opt(ARGV[14]),
    opt(ARGV[15])
  local old = redis.call('HMGET', run, 'status', 'flow', 'trigger', 'event_id', 'parent_run_id',
    'parent_task_id', 'started_at', 'token')
  if old[8] == token then return 1 end -- applied already: this call, re-sent after a lost reply
  local score = old[7] or started
  if old[1] then
    redis.call('HINCRBY', run, 'resumes', 1)
    redis.call('HSET', run, 'resumed_at', started)
    trigger, event = trigger or old[3], event or old[4]
    parent, parent_task = parent or old[5], parent_task or old[6]
  else
    redis.call('HSET', run, 'started_at', started, 'resumes', '0')
    redis.call('ZADD', p .. ':runs:all', started, id)
  end
  redis.call('HSET', run, 'flow', flow, 'status', 'running', 'definition', ARGV[7],
    'initial_context', ARGV[8], 'cancel_requested', '0', 'token', token)
  redis.call('HDEL', run, 'finished_at', 'error')
  put('flow_file', opt(ARGV[6]))
  put('owner', opt(ARGV[12]))
  put('config_path', opt(ARGV[13]))
  put('trigger', trigger)
  put('event_id', event)
  put('parent_run_id', parent)
  put('parent_task_id', parent_task)
  move('status', old[1], 'running', score)
  move('flow', old[2], flow, score)
  move('trigger', old[3], trigger, score)
  move('event', old[4], event, score)
  move('children', old[5], parent, score)
  return 1
end
if op == 'task' then
  local now = redis.call('HMGET', run, 'status', 'token')
  if not now[1] then return 0 end
  local fence = opt(ARGV[6])
  if fence and fence ~= now[2] then return -1 end
  redis.call('HSET', p .. ':runs:tasks:' .. id, ARGV[4], ARGV[5])
  return 1
end
local old = redis.call('HMGET', run, 'status', 'started_at', 'token')
if op == 'finish' then
  if not old[1] then return 0 end
  local fence = opt(ARGV[7])
  if fence and fence ~= old[3] then return -1 end
  redis.call('HSET', run, 'status', ARGV[4], 'finished_at', ARGV[6])
  put('error', opt(ARGV[5]))
  move('status', old[1], ARGV[4], old[2])
  return 1
end
if op == 'cancel' then
  local fence = opt(ARGV[4])
  if fence and fence ~= old[3] then return -1 end
  local paused = old[1] == 'cancelled'
    and redis.call('HGET', run, 'cancel_requested') ~= '1'
    and redis.call('HEXISTS', run, 'trigger') == 1
  if old[1] ~= 'running' and not paused then return 0 end
  redis.call('HSET', run, 'cancel_requested', '1')
  return 1
end
return redis.error_reply('unknown run history operation ' .. op)
"""

LIST: Final = """
local p, want, cutoff, top, seen, scan = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4],
  tonumber(ARGV[5]), tonumber(ARGV[6])
local index, size, checks = p .. ':runs:all', nil, {}
for i = 7, #ARGV, 3 do
  local key = p .. ':runs:' .. ARGV[i] .. ':' .. ARGV[i + 2]
  local n = redis.call('ZCARD', key)
  if not size or n < size then index, size = key, n end
  checks[#checks + 1] = {ARGV[i + 1], ARGV[i + 2]}
end
local function matches(id)
  if #checks < 2 then return true end
  for _, check in ipairs(checks) do
    if redis.call('HGET', p .. ':runs:run:' .. id, check[1]) ~= check[2] then return false end
  end
  return true
end
local cut = nil
if cutoff ~= '-' then cut = tonumber(cutoff) end
local last = nil
if top ~= '+inf' then last = tonumber(top) end
local found, scanned, done = {}, 0, false
while not done and scanned < scan do
  local step = math.min(scan - scanned, 128)
  local chunk = redis.call('ZREVRANGEBYSCORE', index, top, '-inf', 'WITHSCORES', 'LIMIT', seen,
    step)
  for j = 1, #chunk, 2 do
    local score = tonumber(chunk[j + 1])
    if cut and score < cut then done = true break end
    scanned = scanned + 1
    if score == last then seen = seen + 1 else top, last, seen = chunk[j + 1], score, 1 end
    if matches(chunk[j]) then
      found[#found + 1] = chunk[j]
      if not cut and #found == want then cut, cutoff = score, chunk[j + 1] end
    end
  end
  if #chunk < 2 * step then done = true end
end
local out = {}
for i, id in ipairs(found) do
  out[i] = {id, redis.call('HGETALL', p .. ':runs:run:' .. id),
    redis.call('HGETALL', p .. ':runs:tasks:' .. id)}
end
return {out, top, seen, done and 1 or 0, cutoff}
"""
"""Up to `scan` index entries from where the last call stopped (`top`, `seen`; `+inf`, 0 at
first): the runs matching every filter, with their tasks, until `want` of them (those tied with
the last one too) or the end, then where it stopped, whether it is done, and the cutoff. The
caller orders the runs by id within a start time (Lua's string order follows the server's
locale)."""

PRUNE: Final = """
local p, status, cutoff, skip = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local scan, budget = tonumber(ARGV[5]), tonumber(ARGV[6])
local function key(kind, value) return p .. ':runs:' .. kind .. ':' .. value end
local index, all = key('status', status), p .. ':runs:all'
local deleted = 0
local function drop(id, parent)
  local run = key('run', id)
  local f = redis.call('HMGET', run, 'status', 'flow', 'trigger', 'event_id', 'parent_run_id')
  redis.call('ZREM', all, id)
  if f[1] then redis.call('ZREM', key('status', f[1]), id) end
  if f[2] then redis.call('ZREM', key('flow', f[2]), id) end
  if f[3] then redis.call('ZREM', key('trigger', f[3]), id) end
  if f[4] then redis.call('ZREM', key('event', f[4]), id) end
  if f[5] then redis.call('ZREM', key('children', f[5]), id) end
  if parent then redis.call('ZREM', key('children', parent), id) end
  redis.call('UNLINK', run, key('tasks', id), key('children', id))
  deleted = deleted + 1
end
-- The run and its descendants, leaves first; false when the budget ran out before the root.
local function drop_tree(root)
  local stack, on = {{root, false}}, {[root] = true}
  while #stack > 0 do
    local top = stack[#stack]
    local kids = redis.call('ZRANGE', key('children', top[1]), 0, 63)
    if #kids > 0 then
      for _, kid in ipairs(kids) do
        if on[kid] then -- a loop of parents, which no writer makes: cut it
          redis.call('ZREM', key('children', top[1]), kid)
        else
          on[kid] = true
          stack[#stack + 1] = {kid, top[1]}
        end
      end
    else
      if deleted >= budget then return false end
      drop(top[1], top[2])
      stack[#stack] = nil
    end
  end
  return true
end
local scanned, done = 0, false
while not done and scanned < scan and deleted < budget do
  local step = math.min(scan - scanned, 64)
  local chunk = redis.call('ZRANGEBYSCORE', index, '-inf', '(' .. ARGV[3], 'LIMIT', skip, step)
  if #chunk < step then done = true end
  for _, id in ipairs(chunk) do
    scanned = scanned + 1
    local f = redis.call('HMGET', key('run', id), 'status', 'finished_at', 'parent_run_id',
      'cancel_requested', 'trigger')
    if not f[1] then -- gone already (deleted with its parent just now), or a stray entry
      redis.call('ZREM', index, id)
    elseif f[1] == status and f[2] and tonumber(f[2]) < cutoff and not f[3]
        and not (status == 'cancelled' and f[4] ~= '1' and f[5]) then
      if not drop_tree(id) then return {deleted, skip, 0} end
    else
      skip = skip + 1
    end
    if deleted >= budget then done = false break end
  end
end
return {deleted, skip, done and 1 or 0}
"""
"""Deletes, from the runs of one status index that started before the cutoff, past the first
`skip` kept ones, those that are due (see the module docs): at most `budget` runs (descendants
included) and `scan` entries; answers how many it deleted, the entries kept so far, and whether
the index is done."""

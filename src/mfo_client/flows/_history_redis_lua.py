"""The Lua scripts of the Redis run history (`_history_redis`), each atomic on the server.

`WRITE` is every write, by its first argument: `start` (a new run, or a resume of a known one:
see `RunHistory.start_run`), `task`, `finish`, `cancel`. Arguments that may be None come as `-`,
or `=` and the value (a script cannot take a nil). A run moves between the index sets (`status:`,
`flow:`, `trigger:`, `event:`, `children:`) in the same call that changes its hash, keeping its
score, the start of its first attempt.

`LIST` walks the smallest index the filters name from the newest run, checks the other filters
on each run's hash, and stops once it has `limit` runs (and those tied with the last).
"""

from __future__ import annotations

from typing import Final

__all__ = ["LIST", "WRITE"]

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
  if redis.call('EXISTS', run) == 0 then return 0 end
  redis.call('HSET', p .. ':runs:tasks:' .. id, ARGV[4], ARGV[5])
  return 1
end
local old = redis.call('HMGET', run, 'status', 'started_at')
if op == 'finish' then
  if not old[1] then return 0 end
  redis.call('HSET', run, 'status', ARGV[4], 'finished_at', ARGV[6])
  put('error', opt(ARGV[5]))
  move('status', old[1], ARGV[4], old[2])
  return 1
end
if op == 'cancel' then
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
local p, limit = ARGV[1], tonumber(ARGV[2])
local index, size, checks = p .. ':runs:all', nil, {}
for i = 3, #ARGV, 3 do
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
local found, cutoff, start, step = {}, nil, 0, math.max(limit, 64)
while true do
  local chunk = redis.call('ZREVRANGE', index, start, start + step - 1, 'WITHSCORES')
  local more = #chunk == 2 * step
  for j = 1, #chunk, 2 do
    local score = tonumber(chunk[j + 1])
    if cutoff and score < cutoff then more = false break end
    if matches(chunk[j]) then
      found[#found + 1] = chunk[j]
      if #found == limit then cutoff = score end
    end
  end
  if not more then break end
  start = start + step
end
local out = {}
for i, id in ipairs(found) do
  out[i] = {id, redis.call('HGETALL', p .. ':runs:run:' .. id),
    redis.call('HGETALL', p .. ':runs:tasks:' .. id)}
end
return out
"""
"""The `limit` latest runs matching every filter given, with their tasks. Runs tied at the start
of the `limit`-th one are all returned: the caller orders them by id (Lua's string order follows
the server's locale)."""

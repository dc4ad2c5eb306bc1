/// One bounded step of run retention's one-time backfill of a partition: the runs that finished before the apply
/// script kept the finished list (an older version, or before an upgrade) are in no list, so they are found once
/// in the terminal status indexes and put in the backfill set by `completedAt`.
///
/// The walk goes by rank through the status indexes of `completed`, `failed`, `cancelled`: for each, its layout-2
/// sorted set (`idx:status:<s>`), then its layout-4 buckets (`ixs:<s>:<b>`) in bmap order, with its cursor in the
/// retention hash, so a successor resumes it. Ranks are stable because nothing leaves those indexes meanwhile
/// (terminal is final, and the removal script refuses to run until the backfill is done); a run that finishes
/// during the walk can only push ranks up, so some ids are seen twice (ZADD of the same score), never none. The
/// layout-4 migration takes runs out of the layout-2 set only from its top (highest ids, ranks the walk has not
/// reached: they go to buckets, walked after the set) and adds them only to the lowest bucket (ranks pushed up).
///
/// Only runs that finished at or before the bound are taken: the `completedAt` of the finished list's head when
/// the walk started (everything that finished later is in the list), or Redis's clock when the list was empty.
enum RunRetentionBackfillScript {
    static let source = #"""
-- run_retention_backfill.lua: one step of the one-time walk that puts runs finished before the finished list
-- existed into the backfill set.
-- KEYS[1]  <prefix>:{p}:epoch. Other keys, derived from KEYS[1] (same slot): retention (hash: bf 'done' once
--          finished, bfs the status being walked 1..3, bfr its rank, bfb the bound ms, bfk the bmap member of the
--          bucket being walked, absent while the layout-2 set is), finished (list), finished:backfill (zset,
--          member run id, score completedAt), idx:status:<completed|failed|cancelled>, ixs:<s>:<b>, bmap,
--          run:<id> (its completedAt: field ca, or completedAt in layout 1).
-- ARGV[1]  the caller's fencing epoch; refused (FENCED, nothing written) when the partition's epoch differs
-- ARGV[2]  index entries read at most
-- ARGV[3]  now, epoch ms, or "": Redis's clock (TIME); the bound when the finished list is empty
-- Returns {done (1 once the walk is finished), read, queued, then per skipped id: id, reason}; reasons: gone,
-- wrongtype, completedAt, wrongtype:<suffix> (a status index of another type: not walked).
-- Errors: FENCED; BADTYPE <suffix> (retention, finished or finished:backfill of another type: nothing written);
-- BADARG.
local base = string.sub(KEYS[1], 1, -7)
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('FENCED') end
local budget = tonumber(ARGV[2])
if not budget or budget < 1 then return redis.error_reply('BADARG') end
local state, list, backlog = base .. ':retention', base .. ':finished', base .. ':finished:backfill'
local wanted = {retention = 'hash', finished = 'list', ['finished:backfill'] = 'zset'}
for suffix, t in pairs(wanted) do
  local have = redis.call('TYPE', base .. ':' .. suffix)['ok']
  if have ~= 'none' and have ~= t then return redis.error_reply('BADTYPE ' .. suffix) end
end
local f = redis.call('HMGET', state, 'bf', 'bfs', 'bfr', 'bfb', 'bfk')
if f[1] == 'done' then return {1, 0, 0} end
local function ms(text)
  if type(text) ~= 'string' or not string.match(text, '^%d+$') or #text > 15 then return nil end
  return tonumber(text)
end
-- A run's completedAt: layout 2's field ca, else layout 1's completedAt (docs/MEMORY.md).
local function completedAt(key)
  local v = redis.call('HMGET', key, 'ca', 'completedAt')
  return v[1] or v[2]
end
local bound = ms(f[4])
if not bound then
  local head = redis.call('LINDEX', list, 0)
  if head and redis.call('TYPE', base .. ':run:' .. head)['ok'] == 'hash' then
    bound = ms(completedAt(base .. ':run:' .. head))
  end
  if not bound and ARGV[3] ~= '' then bound = ms(ARGV[3]) end
  if not bound then
    local t = redis.call('TIME')
    bound = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
end
local statuses = {'completed', 'failed', 'cancelled'}
local s = tonumber(f[2]) or 1
local rank = tonumber(f[3]) or 0
local bucket = f[5]
local bmap = base .. ':bmap'
local out = {0, 0, 0}
local read, queued, visits = 0, 0, 0
-- Each set visited counts against the budget too, so a call over many empty buckets stays bounded.
while s <= #statuses and read < budget and visits < budget do
  visits = visits + 1
  local suffix = 'idx:status:' .. statuses[s]
  if bucket then suffix = 'ixs:' .. statuses[s] .. ':' .. string.match(bucket, ' (%-?%d+)$') end
  local index = base .. ':' .. suffix
  local t = redis.call('TYPE', index)['ok']
  local ids = {}
  if t == 'zset' then
    ids = redis.call('ZRANGE', index, rank, rank + budget - read - 1)
  elseif t ~= 'none' then
    table.insert(out, suffix)
    table.insert(out, 'wrongtype:' .. suffix)
  end
  for _, id in ipairs(ids) do
    local key = base .. ':run:' .. id
    local rt = redis.call('TYPE', key)['ok']
    if rt == 'none' then
      table.insert(out, id)
      table.insert(out, 'gone')
    elseif rt ~= 'hash' then
      table.insert(out, id)
      table.insert(out, 'wrongtype')
    else
      local text = completedAt(key)
      local at = ms(text)
      if not at then
        table.insert(out, id)
        table.insert(out, 'completedAt')
      elseif at <= bound then
        redis.call('ZADD', backlog, text, id)
        queued = queued + 1
      end
    end
  end
  read = read + #ids
  rank = rank + #ids
  if read < budget then
    -- This set is walked to its end: the status's next bucket (the lowest after its layout-2 set), else the
    -- next status.
    local nxt
    if bucket then
      nxt = redis.call('ZRANGE', bmap, '(' .. bucket, '+', 'BYLEX', 'LIMIT', 0, 1)[1]
    else
      nxt = redis.call('ZRANGE', bmap, 0, 0)[1]
    end
    if nxt then bucket, rank = nxt, 0 else s, rank, bucket = s + 1, 0, nil end
  end
end
if s > #statuses then
  redis.call('HSET', state, 'bf', 'done')
  redis.call('HDEL', state, 'bfs', 'bfr', 'bfb', 'bfk')
  out[1] = 1
else
  redis.call('HSET', state, 'bfs', s, 'bfr', rank, 'bfb', string.format('%d', bound))
  if bucket then redis.call('HSET', state, 'bfk', bucket) else redis.call('HDEL', state, 'bfk') end
end
out[2], out[3] = read, queued
return out
"""#

    /// What is sent: the source without comment lines or indentation (as ``ApplyScript/body``).
    static let body: String = source.split(separator: "\n")
        .map { $0.drop { $0 == " " } }
        .filter { !$0.hasPrefix("--") && !$0.isEmpty }
        .joined(separator: "\n")
}

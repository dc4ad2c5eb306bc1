/// Moves runs of one partition from the layout-2 status and plan+status sorted sets into layout 4's buckets
/// (docs/MEMORY.md, Scripts/IndexKeysLua.swift), a bounded batch per call.
///
/// The runs taken are always the highest ids left in the old sets, numbered downwards from -1 (`nlegacy`), so the
/// old sets only ever hold ids below every bucket: readers take them as one segment under the buckets, and engines
/// keep moving a run that is still there between the old sets (ApplyScript's IX) until this reaches it.
enum MigrateIndexesScript {
    static let source = #"""
-- migrate_indexes.lua: move up to ARGV[1] runs from the layout-2 indexes into layout 4's buckets, atomically.
-- KEYS[1]  <prefix>:{p}:bmap. Every other key is <prefix>:{p}:<suffix>, derived from KEYS[1] (same slot):
--          idx:status:<s>, idx:ps:<plan>:<s> (layout 2), ixs:<s>[:<b>], ixp:<plan>:<s>[:<b>] (layout 4), nlegacy,
--          run:<id> (its plan: field p, or planId in layout 1).
-- ARGV[1]  runs moved at most
-- The highest ids across the seven idx:status:<s> go first; run m of the migration (nlegacy counts them) goes to
-- bucket b = -1 - floor(m / 128), its entries in idx:status:<s> and idx:ps:<plan>:<s> to ixs:<s>:<b> and
-- ixp:<plan>:<s>:<b> (same score), counted in ixs:<s> and ixp:<plan>:<s> (fields <b>, s<floor(b/128)>, all), and
-- bmap's member for b names its lowest id so far. (Run retention's one-time backfill walks the layout-2 set of a
-- status before its buckets, so a run moved here before the walk reached it is found in its bucket.)
-- Returns {moved, left (runs still in the layout-2 status sets)}.
local base = string.sub(KEYS[1], 1, -6)
local size = tonumber(ARGV[1])
if not size or size < 1 then return redis.error_reply('BADARG') end
local statuses = {'pending', 'active', 'waiting', 'paused', 'completed', 'failed', 'cancelled'}
local cand = {}
for _, s in ipairs(statuses) do
  local items = redis.call('ZRANGE', base .. ':idx:status:' .. s, 0, size - 1, 'REV', 'WITHSCORES')
  for i = 1, #items, 2 do table.insert(cand, {items[i], items[i + 1], s}) end
end
table.sort(cand, function(a, b) return a[1] > b[1] end)
local frontier = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
local m = tonumber(redis.call('GET', base .. ':nlegacy')) or 0
local adds, order, lowest = {}, {}, {}
local function add(key, score, id)
  if not adds[key] then
    adds[key] = {}
    table.insert(order, key)
  end
  table.insert(adds[key], score)
  table.insert(adds[key], id)
end
\#(IndexKeysLua.countFields)
\#(IndexKeysLua.countTally)
local moved = 0
for i = 1, math.min(size, #cand) do
  local id, score, s = cand[i][1], cand[i][2], cand[i][3]
  local b = -1 - math.floor(m / 128)
  m = m + 1
  redis.call('ZREM', base .. ':idx:status:' .. s, id)
  add(base .. ':ixs:' .. s .. ':' .. b, score, id)
  tally(base .. ':ixs:' .. s, b, 1)
  local f = redis.call('HMGET', base .. ':run:' .. id, 'p', 'planId')
  local plan = f[1] or f[2]
  if plan and redis.call('ZREM', base .. ':idx:ps:' .. plan .. ':' .. s, id) == 1 then
    add(base .. ':ixp:' .. plan .. ':' .. s .. ':' .. b, score, id)
    tally(base .. ':ixp:' .. plan .. ':' .. s, b, 1)
  end
  lowest[b] = id
  moved = moved + 1
end
for _, key in ipairs(order) do redis.call('ZADD', key, unpack(adds[key])) end
writeTally()
for b, id in pairs(lowest) do
  if frontier and tonumber(string.match(frontier, ' (%-?%d+)$')) == b then redis.call('ZREM', KEYS[1], frontier) end
  redis.call('ZADD', KEYS[1], 0, id .. ' ' .. b)
end
if moved > 0 then redis.call('SET', base .. ':nlegacy', m) end
local left = 0
for _, s in ipairs(statuses) do left = left + redis.call('ZCARD', base .. ':idx:status:' .. s) end
return {moved, left}
"""#
}

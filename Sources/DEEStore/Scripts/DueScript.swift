/// Reads the runs due at a tick from layout 5's bucketed due schedule (and layout 4's `due` set, while it holds
/// anything), for the partition's ticks (Sources/DEEService/Partition/PartitionTick.swift).
enum DueScript {
    static let source = #"""
-- due.lua: the runs of one partition due at or before a tick, in the order a tick steps them.
-- KEYS[1]  <prefix>:{p}:duedir (member: bucket b + 5*10^12 in 13 digits, score: the bucket's earliest due tick;
--          IndexKeysLua.dueMoves). Every other key is <prefix>:{p}:<suffix>, derived from KEYS[1] (same slot):
--          dueb:<b> (bucket b's runs, score: due tick), due (layout 4's schedule: runs below every bucket, and
--          runs dee migrate has not moved yet).
-- ARGV[1]  the tick t
-- ARGV[2]  ids at most
-- The earliest due tick D of the partition, if D <= t: up to ARGV[2] of the runs due at D, in run-id order (the
-- due set's, which are below every bucket, then each bucket's in bucket order: buckets are ranges of ids). So a
-- tick steps its runs in (due tick, run id) order, as SPEC 4 and layout 4's single sorted set did; runs of a later
-- due tick come with the next read. A run in both places (scheduled again by an engine of the previous version)
-- is listed once. Writes only to repair duedir (below), which any caller may do: it is set from the buckets.
-- Returns {next, id...}: next is '' when ids follow, else D ('' when nothing is scheduled; D <= t after 16 rounds
-- of repairs that found nothing: the caller reads again).
local base = string.sub(KEYS[1], 1, -8)
local t, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
if not t or not limit or limit < 1 then return redis.error_reply('BADARG') end
local legacy = base .. ':due'
local out, seen = {''}, {}
local function take(ids)
  for _, id in ipairs(ids) do
    if #out > limit then return end
    if not seen[id] then
      seen[id] = true
      table.insert(out, id)
    end
  end
end
-- A directory entry whose bucket has no run at that tick (state left behind) would hide every later run: it is
-- set again from its bucket, and the earliest tick read again (each round repairs at least one entry).
for _ = 1, 16 do
  local a = redis.call('ZRANGE', legacy, 0, 0, 'WITHSCORES')[2]
  local d = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
  local level = a
  if not a or (d and tonumber(d) < tonumber(a)) then level = d end
  if not level then return {''} end
  if tonumber(level) > t then return {level} end
  if a and tonumber(a) == tonumber(level) then
    take(redis.call('ZRANGE', legacy, a, a, 'BYSCORE', 'LIMIT', 0, limit))
  end
  if d and tonumber(d) == tonumber(level) then
    for _, m in ipairs(redis.call('ZRANGE', KEYS[1], d, d, 'BYSCORE', 'LIMIT', 0, limit)) do
      if #out > limit then break end
      local key = base .. ':dueb:' .. (tonumber(m) - 5000000000000)
      local ids = redis.call('ZRANGE', key, d, d, 'BYSCORE', 'LIMIT', 0, limit - #out + 1)
      if #ids == 0 then
        local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
        if head[1] then redis.call('ZADD', KEYS[1], head[2], m) else redis.call('ZREM', KEYS[1], m) end
      end
      take(ids)
    end
  end
  if #out > 1 then return out end
end
return {tostring(t)}
"""#
}

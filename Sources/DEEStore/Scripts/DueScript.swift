/// Reads the runs due at a tick from layout 5's bucketed due schedule (and layout 4's `due` set, while it holds
/// anything), for the partition's ticks (Sources/DEEService/Partition/PartitionTick.swift).
enum DueScript {
    static let source = #"""
-- due.lua: the runs of one partition due at or before a tick, in the order a tick steps them.
-- KEYS[1]  <prefix>:{p}:duedir (member: bucket b + 5*10^12 in 13 digits, score: the bucket's earliest due tick;
--          IndexKeysLua.dueMoves). Every other key is <prefix>:{p}:<suffix>, derived from KEYS[1] (same slot):
--          dueb:<b> (bucket b's runs, score: due tick), due (layout 4's schedule: what dee migrate has not moved
--          yet, and runs below every bucket), bmap (the creation buckets).
-- ARGV[1]  the tick t
-- ARGV[2]  ids at most
-- The earliest due tick D of the partition, if D <= t: up to ARGV[2] of the runs due at D, in run-id order: the
-- buckets' (read in bucket order, and buckets are ranges of ids) merged with the due set's. So a tick steps its
-- runs in (due tick, run id) order, as SPEC 4 says and layout 4's single sorted set did; runs of a later due tick
-- come with the next read. A run in both places (an engine of the previous layout scheduled it again) is listed
-- once.
-- State left behind is repaired, never returned: a directory entry naming a tick its bucket has nothing at (it
-- would hide every later run) is set again from the bucket; an entry in a bucket other than its run's (writers
-- look for it in its own) is moved there. Then the earliest tick is read again; each round repairs at least one
-- entry. These writes follow from the schedule alone, so any caller may make them.
-- Returns {next, id...}: next is '' when ids follow, else D ('' when nothing is scheduled; ARGV[1] after 16
-- rounds of repairs: the caller reads again).
\#(IndexKeysLua.bucketLookup)
\#(IndexKeysLua.dueDirectory)
\#(IndexKeysLua.dueMoves)
local base = string.sub(KEYS[1], 1, -8)
local t, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
if not t or not limit or limit < 1 then return redis.error_reply('BADARG') end
local legacy, dir, bmap = base .. ':due', KEYS[1], base .. ':bmap'
for _ = 1, 16 do
  local a = redis.call('ZRANGE', legacy, 0, 0, 'WITHSCORES')[2]
  local d = redis.call('ZRANGE', dir, 0, 0, 'WITHSCORES')[2]
  local level = a
  if not a or (d and tonumber(d) < tonumber(a)) then level = d end
  if not level then return {''} end
  if tonumber(level) > t then return {level} end
  local old, new, repaired = {}, {}, false
  if a and tonumber(a) == tonumber(level) then
    old = redis.call('ZRANGE', legacy, a, a, 'BYSCORE', 'LIMIT', 0, limit)
  end
  if d and tonumber(d) == tonumber(level) then
    for _, m in ipairs(redis.call('ZRANGE', dir, d, d, 'BYSCORE', 'LIMIT', 0, limit)) do
      if #new >= limit then break end
      local b = tonumber(m) - 5000000000000
      local key = base .. ':dueb:' .. b
      local ids = redis.call('ZRANGE', key, d, d, 'BYSCORE', 'LIMIT', 0, limit - #new)
      if #ids == 0 then
        setDueHead(base, b)
        repaired = true
      end
      for _, id in ipairs(ids) do
        if bucketOf(bmap, id) ~= b then
          redis.call('ZREM', key, id)
          dueMoves(base, {id, d}, 1, 2)
          setDueHead(base, b)
          repaired = true
        else
          table.insert(new, id)
        end
      end
    end
  end
  if not repaired then
    local out, i, j, last = {''}, 1, 1, nil
    while #out <= limit and (i <= #old or j <= #new) do
      local x
      if j > #new or (i <= #old and old[i] <= new[j]) then
        x, i = old[i], i + 1
      else
        x, j = new[j], j + 1
      end
      if x ~= last then
        table.insert(out, x)
        last = x
      end
    end
    return out
  end
end
return {ARGV[1]}
"""#
}

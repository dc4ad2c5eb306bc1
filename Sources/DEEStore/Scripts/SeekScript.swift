/// Counts and pages of one partition's runs by run-id bound: what a `listRuns` page deep inside a merge of
/// several partitions needs, without walking the runs before it.
enum SeekScript {
    static let source = #"""
-- seek.lua: counts and pages of one partition's matching runs by run-id bound.
-- KEYS[1]  <prefix>:{p}:idx:status:pending. Every index key is derived from its prefix (same slot).
-- ARGV[1]  statuses, comma-separated, or "" (all)      ARGV[2]  planId or ""
-- ARGV[3]  min score ("-inf", "ms" or "(ms")            ARGV[4]  max score ("+inf", "ms" or "(ms")
-- ARGV[5]  "count": for each bound ARGV[7…], how many matching runs have an id above it
--          "page":  up to ARGV[6] matching run ids in listRuns order (newest millisecond first, ties by id
--                   ascending) from the first id at or above ARGV[7] of ARGV[7]'s millisecond (ARGV[7] is a run
--                   id or a prefix of one that names its millisecond: its first 13 characters)
--          "span":  the lowest and the highest matching id ({"", ""} when none), of the whole time window when
--                   ARGV[7] is "", else of the runs of millisecond ARGV[7]
-- ARGV[6]  the page size (page mode)
-- A bound is "" (below every id) or a string that is no run id: a run id prefix followed by "-~" sorts
-- above every id that starts with the prefix. Run ids sort in startedAt order (their first 13 characters
-- are the startedAt ms, the indexes' score), so the ids above a bound are a prefix of each index read
-- newest first: found with ZCOUNT and a binary search by rank among the ids of the bound's millisecond.
-- Cost per index and bound: O(log N) ZCOUNTs, and O(log N) rank reads per halving of that millisecond's ids.
-- Returns a list of counts (count mode) or of ids (page mode).
\#(IndexKeysLua.function)
\#(ListOrderLua.functions)
local base = string.sub(KEYS[1], 1, -(#':idx:status:pending' + 1))
local statuses = {}
for s in string.gmatch(ARGV[1], '[^,]+') do table.insert(statuses, s) end
local plan, min, max, mode = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local keys = indexKeys(base, statuses, plan)

-- How many ids of index k (all of it, newest first) are above bound b.
local function above(k, b)
  if b == '' then return redis.call('ZCARD', k) end
  local ms = string.sub(b, 1, 13)
  local r = redis.call('ZCOUNT', k, '(' .. ms, '+inf')
  if string.sub(b, 14) == '-~' then return r end
  local lo, hi = r, r + redis.call('ZCOUNT', k, ms, ms)
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if redis.call('ZRANGE', k, mid, mid, 'REV')[1] > b then lo = mid + 1 else hi = mid end
  end
  return lo
end

-- Newest first, index k is: [0, top) above the time window, [top, bottom) in it, [bottom, N) below it.
local function window(k)
  local top = redis.call('ZCARD', k) - redis.call('ZCOUNT', k, '-inf', max)
  return top, redis.call('ZCOUNT', k, min, '+inf')
end

if mode == 'span' then
  local ms, lo, hi = ARGV[7], nil, nil
  for _, k in ipairs(keys) do
    local first, last
    if ms == '' then
      local top, bottom = window(k)
      if bottom > top then
        first = redis.call('ZRANGE', k, bottom - 1, bottom - 1, 'REV')[1]
        last = redis.call('ZRANGE', k, top, top, 'REV')[1]
      end
    else
      first = redis.call('ZRANGE', k, ms, ms, 'BYSCORE', 'LIMIT', 0, 1)[1]
      last = redis.call('ZRANGE', k, ms, ms, 'BYSCORE', 'REV', 'LIMIT', 0, 1)[1]
    end
    if first and (not lo or first < lo) then lo = first end
    if last and (not hi or last > hi) then hi = last end
  end
  return {lo or '', hi or ''}
end

if mode == 'count' then
  local counts = {}
  for i = 7, #ARGV do counts[i - 6] = 0 end
  for _, k in ipairs(keys) do
    local top, bottom = window(k)
    if bottom > top then
      for i = 7, #ARGV do
        counts[i - 6] = counts[i - 6] + math.max(0, math.min(above(k, ARGV[i]), bottom) - top)
      end
    end
  end
  return counts
end

-- Page: the ids of the start's millisecond at or above it (ascending ranks of that score, found by a binary
-- search by rank), then the older milliseconds in listRuns order.
local size, from = tonumber(ARGV[6]), ARGV[7]
local ms = string.sub(from, 1, 13)
local ids = {}
for _, k in ipairs(keys) do
  local lo = redis.call('ZCOUNT', k, '-inf', '(' .. ms)
  local hi = lo + redis.call('ZCOUNT', k, ms, ms)
  local first, last = lo, hi
  while first < last do
    local mid = math.floor((first + last) / 2)
    if redis.call('ZRANGE', k, mid, mid)[1] < from then first = mid + 1 else last = mid end
  end
  local got = 0
  if hi > first then
    for _, id in ipairs(redis.call('ZRANGE', k, first, math.min(first + size, hi) - 1)) do
      table.insert(ids, id)
      got = got + 1
    end
  end
  for _, id in ipairs(newestFirst(k, min, '(' .. ms, 0, size - got)) do table.insert(ids, id) end
end
table.sort(ids, listBefore)
local page = {}
for i = 1, math.min(size, #ids) do page[i] = ids[i] end
return page
"""#
}

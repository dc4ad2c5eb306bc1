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
-- Cost per bound: the counts of buckets above its bucket (Scripts/IndexKeysLua.swift) and a ZCOUNT and a binary
-- search by rank among one bucket's ids of the bound's millisecond.
-- Returns a list of counts (count mode) or of ids (page mode).
\#(ListOrderLua.functions)
\#(IndexKeysLua.library)
local base = string.sub(KEYS[1], 1, -(#':idx:status:pending' + 1))
local statuses = {}
for s in string.gmatch(ARGV[1], '[^,]+') do table.insert(statuses, s) end
local plan, min, max, mode = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local ix = openIndex(base, statuses, plan)
-- Descending positions: [0, top) above the time window, [top, bottom) in it.
local top, bottom, total = window(ix, min, max)

if mode == 'span' then
  local ms = ARGV[7]
  local hi, lo
  if ms == '' then
    if bottom > top then
      hi = readDesc(ix, top, 1)[1]
      lo = readDesc(ix, bottom - 1, 1)[1]
    end
  else
    local ms13 = string.format('%013d', tonumber(ms))
    local first, last = above(ix, ms13 .. '-~', false), above(ix, ms13, false)
    if last > first then
      hi = readDesc(ix, first, 1)[1]
      lo = readDesc(ix, last - 1, 1)[1]
    end
  end
  return {lo or '', hi or ''}
end

if mode == 'count' then
  local counts = {}
  for i = 7, #ARGV do
    local a = total
    if ARGV[i] ~= '' then a = above(ix, ARGV[i], false) end
    counts[i - 6] = math.max(0, math.min(a, bottom) - top)
  end
  return counts
end

-- Page: the ids of the start's millisecond at or above it (ascending), then the older milliseconds in listRuns
-- order.
local size, from = tonumber(ARGV[6]), ARGV[7]
local ms = string.sub(from, 1, 13)
local gs, at = above(ix, ms .. '-~', false), above(ix, from, true)
local page = {}
if at > gs then
  local first = math.max(gs, at - size)
  local got = readDesc(ix, first, at - first)
  for t = #got, 1, -1 do table.insert(page, got[t]) end
end
local older = math.max(top, above(ix, ms, false))
for _, id in ipairs(newestFirst(ix, older, bottom, 0, size - #page)) do table.insert(page, id) end
return page
"""#
}

/// Answers a run query of one partition from its indexes, atomically.
enum QueryScript {
    static let source = #"""
-- query.lua: the run ids of one partition that match a filter, in listRuns order (newest startedAt first, ties
-- by id ascending: creation order), and the exact number of matches.
-- KEYS[1]  <prefix>:{p}:idx:status:pending. Every index key is derived from its prefix (same slot).
-- ARGV[1]  statuses, comma-separated, or "" (all)
-- ARGV[2]  planId or ""        ARGV[3]  contactId or ""
-- ARGV[4]  min score ("-inf" or startedAfter ms)     ARGV[5]  max score ("+inf" or "(" .. startedBefore ms)
-- ARGV[6]  offset              ARGV[7]  count
-- ARGV[8]  id ceiling: only runs whose id sorts below it ("" for none)
-- ARGV[9]  "1" to skip the exact total (a bulk command's batch needs only the page; the total costs no more)
-- ARGV[10] with a contactId: the key suffix of its record, cx:<bucket> (Sources/DEEStore/ContactRecords.swift)
-- Returns {total, id, id, ...}.
--
-- Which indexes answer:
--   contactId given: the contact's record drives (and layout 2's idx:contact:<c> until dee migrate folds it),
--                    each run checked (a contact has few runs);
--   planId given:    the plan+status index (ixp:<plan>:<status>, and idx:ps:<plan>:<status> of layout 2 until
--                    dee migrate empties it) of each status asked, all seven when none, read as one;
--   otherwise:       the status index (ixs:<status>, and idx:status:<status>) of each status asked, likewise.
-- Cost without contactId (Scripts/IndexKeysLua.swift): the total and each end of the window are counts of
-- buckets (≤ 128 per index and one per 128 buckets above) plus a ZCOUNT in one bucket; the page is read from the
-- buckets that hold it, found the same way, so a deep offset costs about what offset 0 does. Never a scan of runs
-- outside the page (the layout-2 sorted sets: their first offset + count ids while they exist).
\#(ListOrderLua.functions)
\#(IndexKeysLua.library)
local base = string.sub(KEYS[1], 1, -(#':idx:status:pending' + 1))
local statuses = {}
for s in string.gmatch(ARGV[1], '[^,]+') do table.insert(statuses, s) end
local plan, contact = ARGV[2], ARGV[3]
local min, max = ARGV[4], ARGV[5]
local offset, count = tonumber(ARGV[6]), tonumber(ARGV[7])
local ceiling = ARGV[8]
local skipTotal = ARGV[9] == '1'

if contact ~= '' then
  local statusSet = {}
  for _, s in ipairs(statuses) do statusSet[s] = true end
  local ids, seen = {}, {}
  local record = redis.call('HGET', base .. ':' .. ARGV[10], contact)
  local windowed = min ~= '-inf' or max ~= '+inf'
  local low = tonumber(min) or -math.huge
  local high, open = tonumber(string.match(max, '^%(?(.*)$')) or math.huge, string.sub(max, 1, 1) == '('
  for token in string.gmatch(record or '', '[^ ]+') do
    local id = string.match(token, '^[^/]+')
    local inside = true
    if windowed then
      -- startedAt: the run hash's field, else the id's first 13 digits (layout 2 stores it only when it differs).
      local f = redis.call('HMGET', base .. ':run:' .. id, 'sa', 'startedAt')
      local at = tonumber(f[1] or f[2] or string.sub(id, 1, 13)) or 0
      inside = at >= low and (at < high or (not open and at == high))
    end
    if inside then
      table.insert(ids, id)
      seen[id] = true
    end
  end
  -- Runs still in layout 2's sorted set, until dee migrate step 3 folds it into the record.
  for _, id in ipairs(redis.call('ZRANGE', base .. ':idx:contact:' .. contact, max, min, 'BYSCORE', 'REV')) do
    if not seen[id] then table.insert(ids, id) end
  end
  table.sort(ids, listBefore)
  local result = {0}
  local total, taken = 0, 0
  for _, id in ipairs(ids) do
    local ok = ceiling == '' or id < ceiling
    if ok and (plan ~= '' or #statuses > 0) then
      -- Layout 2's short names, else layout 1's (a run hash dee migrate has not reached yet).
      local f = redis.call('HMGET', base .. ':run:' .. id, 'p', 's', 'planId', 'status')
      local runPlan, runStatus = f[1] or f[3], f[2] or f[4]
      if plan ~= '' and runPlan ~= plan then ok = false end
      if ok and #statuses > 0 and not statusSet[runStatus] then ok = false end
    end
    if ok then
      total = total + 1
      if total > offset and taken < count then
        table.insert(result, id)
        taken = taken + 1
      end
    end
  end
  result[1] = total
  return result
end

local ix = openIndex(base, statuses, plan)
local top, bottom, _ = window(ix, min, max)
local total = bottom - top
-- With a ceiling (bulkCancel: runs that existed when the command arrived) the page starts below it: ids at or
-- above it can only be runs of the command's own millisecond or later ones.
if ceiling ~= '' then top = math.max(top, above(ix, ceiling, true)) end
local result = newestFirst(ix, top, bottom, offset, count)
table.insert(result, 1, total)
return result
"""#
}

/// Lua shared by query.lua and seek.lua: listRuns order (SPEC 6: newest `startedAt` first, ties by id ascending,
/// i.e. creation order) over the run indexes. An index is scored by `startedAt` ms, which is also a run id's
/// first 13 characters (fixed width), so the order is a function of the ids alone. Redis orders a sorted set by
/// (score, member) and `REV` reverses both, so the order needed, score descending then member ascending, is
/// `REV` order with each group of equal scores turned around. Interpolated into each script after its header.
enum ListOrderLua {
    static let functions = #"""
-- listRuns order of two run ids: the newer millisecond (an id's first 13 characters) first, then the lower id.
local function listBefore(a, b)
  local ma, mb = string.sub(a, 1, 13), string.sub(b, 1, 13)
  if ma ~= mb then return ma > mb end
  return a < b
end
"""#
}

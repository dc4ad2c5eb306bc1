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
-- ARGV[9]  "1" to skip the exact total (a bulk command's batch needs only the page)
-- ARGV[10] with a contactId: the key suffix of its record, cx:<bucket> (Sources/DEEStore/ContactRecords.swift)
-- Returns {total, id, id, ...}.
--
-- Which indexes answer (all sorted sets scored by startedAt ms):
--   contactId given: the contact's record drives (and layout 2's idx:contact:<c> until dee migrate folds it),
--                    each run checked (a contact has few runs);
--   planId given:    idx:ps:<plan>:<status> for each status asked (all seven when none), merged;
--   otherwise:       idx:status:<status> for each status asked (all seven when none), merged.
-- Cost without contactId: per index O(log N) for the count and O(log N + offset + count) for the page;
-- never a scan of runs outside the page.
\#(IndexKeysLua.function)
\#(ListOrderLua.functions)
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

local keys = indexKeys(base, statuses, plan)

local total = 0
if not skipTotal then
  for _, k in ipairs(keys) do total = total + redis.call('ZCOUNT', k, min, max) end
end

-- One index and no ceiling: the page is one range read (and a fix-up of its end groups).
if #keys == 1 and ceiling == '' then
  local result = newestFirst(keys[1], min, max, offset, count)
  table.insert(result, 1, total)
  return result
end

-- The page: the heads of every index (each one's first offset+count in listRuns order), merged. With a ceiling
-- (bulkCancel: runs that existed when the command arrived) ids at or above it are passed over; they can only be
-- runs of the command's own millisecond or later ones.
local want = offset + count
local heads = {}
for _, k in ipairs(keys) do
  local from = 0
  local got = 0
  while got < want do
    local items = newestFirst(k, min, max, from, want)
    if #items == 0 then break end
    for _, id in ipairs(items) do
      if ceiling == '' or id < ceiling then
        table.insert(heads, id)
        got = got + 1
      end
    end
    from = from + #items
    if ceiling == '' then break end
  end
end
if #keys > 1 then table.sort(heads, listBefore) end
local result = {total}
for i = offset + 1, math.min(#heads, offset + count) do table.insert(result, heads[i]) end
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

-- `count` ids of sorted set k whose scores are within [min, max] (ZRANGE BYSCORE bounds), in listRuns order,
-- from position `offset` of that order. Positions of one score are the same in REV order and in this one, only
-- turned around within the score: a page is the REV range of the same positions, with its inner score groups
-- reversed, and its first and last groups (which may reach past the page) read by rank in ascending order.
-- Cost: the REV range read, plus O(log N + group part) for each of the two end groups.
local function newestFirst(k, min, max, offset, count)
  local out = {}
  if count <= 0 then return out end
  local items = redis.call('ZRANGE', k, max, min, 'BYSCORE', 'REV', 'LIMIT', offset, count, 'WITHSCORES')
  local n = #items / 2
  local i, pos = 1, offset
  while i <= n do
    local score = items[2 * i]
    local j = i
    while j < n and items[2 * (j + 1)] == score do j = j + 1 end
    local size = j - i + 1
    if i > 1 and j < n then
      for t = j, i, -1 do table.insert(out, items[2 * t - 1]) end
    else
      -- The group's ascending ranks start after every lower score; positions start after every higher score
      -- within the window.
      local newer = redis.call('ZCOUNT', k, '(' .. score, max)
      local first = redis.call('ZCOUNT', k, '-inf', '(' .. score) + (pos - newer)
      for _, id in ipairs(redis.call('ZRANGE', k, first, first + size - 1)) do table.insert(out, id) end
    end
    pos = pos + size
    i = j + 1
  end
  return out
end
"""#
}

/// Answers a run query of one partition from its indexes, atomically.
enum QueryScript {
    static let source = #"""
-- query.lua: the run ids of one partition that match a filter, newest startedAt first (ties: id descending),
-- and the exact number of matches.
-- KEYS[1]  <prefix>:{p}:idx:status:pending. Every index key is derived from its prefix (same slot).
-- ARGV[1]  statuses, comma-separated, or "" (all)
-- ARGV[2]  planId or ""        ARGV[3]  contactId or ""
-- ARGV[4]  min score ("-inf" or startedAfter ms)     ARGV[5]  max score ("+inf" or "(" .. startedBefore ms)
-- ARGV[6]  offset              ARGV[7]  count
-- ARGV[8]  id ceiling: only runs whose id sorts below it ("" for none)
-- ARGV[9]  "1" to skip the exact total (a bulk command's batch needs only the page)
-- Returns {total, id, id, ...}.
--
-- Which indexes answer (all sorted sets scored by startedAt ms):
--   contactId given: the contact's index drives, each member checked (a contact has few runs);
--   planId given:    idx:ps:<plan>:<status> for each status asked (all seven when none), merged;
--   otherwise:       idx:status:<status> for each status asked (all seven when none), merged.
-- Cost without contactId: per index O(log N) for the count and O(log N + offset + count) for the page;
-- never a scan of runs outside the page.
\#(IndexKeysLua.function)
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
  local ids = redis.call('ZRANGE', base .. ':idx:contact:' .. contact, max, min, 'BYSCORE', 'REV')
  local result = {0}
  local total, taken = 0, 0
  for _, id in ipairs(ids) do
    local ok = ceiling == '' or id < ceiling
    if ok and (plan ~= '' or #statuses > 0) then
      local f = redis.call('HMGET', base .. ':run:' .. id, 'planId', 'status')
      if plan ~= '' and f[1] ~= plan then ok = false end
      if ok and #statuses > 0 and not statusSet[f[2]] then ok = false end
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

-- One index and no ceiling: the page is one range read.
if #keys == 1 and ceiling == '' then
  local result = redis.call('ZRANGE', keys[1], max, min, 'BYSCORE', 'REV', 'LIMIT', offset, count)
  table.insert(result, 1, total)
  return result
end

-- The page: the heads of every index, merged. With a ceiling (bulkCancel: runs that existed when the command
-- arrived) ids at or above it are passed over; they can only be runs of the command's own millisecond.
local want = offset + count
local heads = {}
for _, k in ipairs(keys) do
  local from = 0
  local got = 0
  while got < want do
    local items = redis.call('ZRANGE', k, max, min, 'BYSCORE', 'REV', 'LIMIT', from, want, 'WITHSCORES')
    if #items == 0 then break end
    for i = 1, #items, 2 do
      if ceiling == '' or items[i] < ceiling then
        table.insert(heads, {items[i], tonumber(items[i + 1])})
        got = got + 1
      end
    end
    from = from + #items / 2
    if ceiling == '' then break end
  end
end
if #keys > 1 then
  table.sort(heads, function(a, b)
    if a[2] ~= b[2] then return a[2] > b[2] end
    return a[1] > b[1]
  end)
end
local result = {total}
for i = offset + 1, math.min(#heads, offset + count) do table.insert(result, heads[i][1]) end
return result
"""#
}

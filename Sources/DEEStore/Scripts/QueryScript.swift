/// Answers a run query of one partition from its indexes, atomically.
enum QueryScript {
    static let source = #"""
-- query.lua: the run ids of one partition that match a filter, newest startedAt first (ties: id descending),
-- and the exact number of matches.
-- KEYS[1]  <prefix>:{p}:idx:all. Index keys are derived from it (same slot).
-- ARGV[1]  statuses, comma-separated, or ""
-- ARGV[2]  planId or ""        ARGV[3]  contactId or ""
-- ARGV[4]  min score ("-inf" or startedAfter ms)     ARGV[5]  max score ("+inf" or "(" .. startedBefore ms)
-- ARGV[6]  offset              ARGV[7]  count
-- ARGV[8]  id ceiling: only runs whose id sorts below it ("" for none)
-- ARGV[9]  "1" to skip the exact total (a bulk command's batch needs only the page)
-- Returns {total, id, id, ...}.
-- Cost: one index and no filter (or statuses only): O(log N + offset + count) per index touched.
-- Several filters: the smallest index drives, every member in the time window is checked against the
-- others with O(1) lookups: O(size of the smallest index).
local base = string.sub(KEYS[1], 1, -9)
local statuses = {}
for s in string.gmatch(ARGV[1], '[^,]+') do table.insert(statuses, s) end
local plan, contact = ARGV[2], ARGV[3]
local min, max = ARGV[4], ARGV[5]
local offset, count = tonumber(ARGV[6]), tonumber(ARGV[7])
local ceiling = ARGV[8]
local skipTotal = ARGV[9] == '1'
local result = {0}

-- Indexes of the filters, with their sizes.
local drivers = {}
if plan ~= '' then table.insert(drivers, {key = base .. ':idx:plan:' .. plan, kind = 'plan'}) end
if contact ~= '' then table.insert(drivers, {key = base .. ':idx:contact:' .. contact, kind = 'contact'}) end
if #statuses == 1 then table.insert(drivers, {key = base .. ':idx:status:' .. statuses[1], kind = 'status'}) end

-- One index (a plan, a contact, one status), several statuses only, or nothing: count by ZCOUNT and merge
-- pages, no member checks.
if ceiling == '' and (#drivers == 0 or (#drivers == 1 and (#statuses <= 1))) then
  local keys = {}
  if #drivers == 1 then
    keys = {drivers[1].key}
  elseif #statuses == 0 then
    keys = {KEYS[1]}
  else
    for _, s in ipairs(statuses) do table.insert(keys, base .. ':idx:status:' .. s) end
  end
  if ceiling == '' then
    local total = 0
    for _, k in ipairs(keys) do total = total + redis.call('ZCOUNT', k, min, max) end
    if #keys == 1 then
      result = redis.call('ZRANGE', keys[1], max, min, 'BYSCORE', 'REV', 'LIMIT', offset, count)
      table.insert(result, 1, total)
      return result
    end
    -- Merge the heads of several indexes.
    local heads = {}
    for _, k in ipairs(keys) do
      local items = redis.call('ZRANGE', k, max, min, 'BYSCORE', 'REV', 'LIMIT', 0, offset + count, 'WITHSCORES')
      for i = 1, #items, 2 do table.insert(heads, {items[i], tonumber(items[i + 1])}) end
    end
    table.sort(heads, function(a, b)
      if a[2] ~= b[2] then return a[2] > b[2] end
      return a[1] > b[1]
    end)
    result = {total}
    for i = offset + 1, math.min(#heads, offset + count) do table.insert(result, heads[i][1]) end
    return result
  end
end

-- Several filters (or a ceiling): the smallest index drives.
if #drivers == 0 then
  for _, s in ipairs(statuses) do table.insert(drivers, {key = base .. ':idx:status:' .. s, kind = 'status'}) end
end
local best, bestSize = nil, nil
for _, d in ipairs(drivers) do
  if #statuses > 1 and d.kind == 'status' then
    -- only the single-status case drives by status
  else
    local n = redis.call('ZCARD', d.key)
    if not best or n < bestSize then best, bestSize = d, n end
  end
end
if not best then
  -- several statuses and a ceiling only: drive by the time index
  best = {key = KEYS[1], kind = 'all'}
end
local statusSet = {}
for _, s in ipairs(statuses) do statusSet[s] = true end
local checkStatus = #statuses > 0 and not (best.kind == 'status')
local total, taken = 0, 0
local pos, chunk = 0, 500
result = {0}
while true do
  local ids = redis.call('ZRANGE', best.key, max, min, 'BYSCORE', 'REV', 'LIMIT', pos, chunk)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    local ok = true
    if ceiling ~= '' and id >= ceiling then ok = false end
    if ok and plan ~= '' and best.kind ~= 'plan' then
      ok = redis.call('ZSCORE', base .. ':idx:plan:' .. plan, id) ~= false
    end
    if ok and contact ~= '' and best.kind ~= 'contact' then
      ok = redis.call('ZSCORE', base .. ':idx:contact:' .. contact, id) ~= false
    end
    if ok and checkStatus then
      ok = statusSet[redis.call('HGET', base .. ':run:' .. id, 'status')] == true
    end
    if ok then
      total = total + 1
      if total > offset and taken < count then
        table.insert(result, id)
        taken = taken + 1
      end
    end
  end
  if skipTotal and taken >= count then break end
  pos = pos + #ids
end
result[1] = total
return result
"""#
}

/// Layout 3's migration (`dee migrate` step 3, ``ContactRecordsStep``): folds layout 2's per-contact sorted sets
/// and `enroll` hash into contact records (Sources/DEEStore/ContactRecords.swift), a bounded batch per call.
enum FoldContactsScript {
    static let source = #"""
-- fold_contacts.lua: fold layout 2's contact indexes and enrollments into layout 3's contact records, atomically.
-- KEYS[1]  <prefix>:{p}:epoch (names the partition; not checked: the migration runs beside the owners, and every
--          write here is one the owner's own writes agree with). Every other key is <prefix>:{p}:<suffix>, in
--          KEYS[1]'s slot: idx:contact:<c> (zset), enroll (hash), run:<id>, cx:<bucket>.
-- ARGV[1]  "keys": ARGV[2…] are contact index suffixes (idx:contact:<c>) found by SCAN: each one's runs are
--          merged into the contact's record (older runs first, open runs tagged with their plan), its open runs'
--          enroll fields removed, and the sorted set deleted. A key that is not a sorted set is left alone.
--          "enroll": ARGV[2…] are enroll fields (<plan>:<contact>) found by HSCAN: what is left of the hash once
--          every contact index is folded (state an operator left); an open run the record lacks is added.
-- A repeated call changes nothing: a run already in the record is not added again.
-- Returns the number of contacts (keys) or enrollments (enroll) folded.
\#(ContactRecordsLua.bucket)
local base = string.sub(KEYS[1], 1, -7)
local open = {pending = true, active = true, waiting = true, paused = true}
-- The run's plan and whether it is open, from its hash (layout 2's short names, else layout 1's).
local function runState(id)
  local f = redis.call('HMGET', base .. ':run:' .. id, 's', 'p', 'status', 'planId')
  local status, plan = f[1] or f[3], f[2] or f[4]
  return plan, status ~= nil and open[status] == true
end
-- Adds tokens for `ids` (oldest first) to the contact's record, ahead of what it holds (runs the engine created
-- since layout 3, which are newer), skipping runs it already has.
local function merge(contact, ids)
  local cx = base .. ':cx:' .. contactBucket(contact)
  local have = redis.call('HGET', cx, contact)
  local known = {}
  for token in string.gmatch(have or '', '[^ ]+') do known[string.match(token, '^[^/]+')] = true end
  local tokens = {}
  for _, id in ipairs(ids) do
    if not known[id] then
      known[id] = true
      local plan, isOpen = runState(id)
      table.insert(tokens, (isOpen and plan) and (id .. '/' .. plan) or id)
      if isOpen and plan then
        local field = plan .. ':' .. contact
        if redis.call('HGET', base .. ':enroll', field) == id then redis.call('HDEL', base .. ':enroll', field) end
      end
    end
  end
  if #tokens == 0 then return end
  local value = table.concat(tokens, ' ')
  if have and have ~= '' then value = value .. ' ' .. have end
  redis.call('HSET', cx, contact, value)
end
local folded = 0
if ARGV[1] == 'keys' then
  for i = 2, #ARGV do
    local key = base .. ':' .. ARGV[i]
    local contact = string.sub(ARGV[i], #'idx:contact:' + 1)
    if contact ~= '' and redis.call('TYPE', key)['ok'] == 'zset' then
      local ids = redis.call('ZRANGE', key, 0, -1)
      table.sort(ids)
      merge(contact, ids)
      redis.call('DEL', key)
      folded = folded + 1
    end
  end
elseif ARGV[1] == 'enroll' then
  for i = 2, #ARGV do
    local field = ARGV[i]
    local id = redis.call('HGET', base .. ':enroll', field)
    local contact = string.match(field, '^[^:]*:(.+)$')
    if id and contact then
      local _, isOpen = runState(id)
      if isOpen then merge(contact, {id}) end
      redis.call('HDEL', base .. ':enroll', field)
      folded = folded + 1
    end
  end
else
  return redis.error_reply('BADARG')
end
return folded
"""#
}

-- upd.lua: a tick's update of runs [from, to) written by gen.lua (docs/MEMORY.md), per layout.
-- KEYS: none (throwaway Redis). ARGV[1] layout (hash_full, hash_short, packed)  ARGV[2] from  ARGV[3] to
-- ARGV[4] key base  ARGV[5] run-bucket size (packed)
local comp, from, to, base, nb = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5] or '128')
local head = string.rep('8e', 32)
local function rid(i) return string.format('%013d-000000-%05d-0', 1795465714287 + math.floor(i / 1000), i % 1000) end
for i = from, to - 1 do
  local id = rid(i)
  if comp == 'hash_full' then
    redis.call('HSET', base .. ':run:' .. id, 'status', 'active', 'currentStep', 'nudge', 'stepsCompleted', '2',
      'stepsRemaining', '2', 'currentTick', '1001', 'due', '1002', 'auditHead', head, 'auditCount', '3')
  elseif comp == 'hash_short' then
    redis.call('HSET', base .. ':r:' .. id, 's', 'active', 'st', 'nudge', 'n', '2', 'r', '2', 't', '1001', 'd', '1002',
      'h', head, 'a', '3')
  elseif comp == 'packed' then
    local v = 'active|bench|1|b' .. i .. '|nudge|2|2|0|1001||||1002||||3|' .. head .. '|{"email":"x@y.z","id":"b' .. i .. '"}|{}|'
    redis.call('HSET', base .. ':runs:' .. math.floor(i / nb), string.sub(id, 14), v)
  end
end
return to - from

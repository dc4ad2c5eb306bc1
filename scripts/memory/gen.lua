-- gen.lua: writes one component of a candidate run layout for runs [from, to) (docs/MEMORY.md).
-- KEYS: none (every key is under ARGV[4], a prefix ending in "{0}"; a throwaway Redis only).
-- ARGV[1] component   ARGV[2] from   ARGV[3] to   ARGV[4] key base, e.g. "dee:{0}"
-- ARGV[5] buckets (contact/enroll bucket count, or run-bucket size)
-- The run is the bench's: the linear 4-step plan "bench", a contact {id, email}, no variables, status waiting.
local comp, from, to, base = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local nb = tonumber(ARGV[5] or '128')
local head = string.rep('9f', 32)
local function rid(i)
  return string.format('%013d-000000-%05d-0', 1795465714287 + math.floor(i / 1000), i % 1000)
end
local function ms(i) return 1795465714287 + math.floor(i / 1000) end
local function cid(i) return 'b' .. i end
local function contact(i) return '{"email":"x@y.z","id":"' .. cid(i) .. '"}' end
for i = from, to - 1 do
  local id = rid(i)
  if comp == 'hash_full' then
    redis.call('HSET', base .. ':run:' .. id, 'id', id, 'planId', 'bench', 'planVersion', '1', 'contactId', cid(i),
      'status', 'waiting', 'currentStep', 'pause', 'stepsCompleted', '1', 'stepsRemaining', '3', 'startTick', '0',
      'currentTick', '1', 'startedAt', tostring(ms(i)), 'variables', '{}', 'contact', contact(i), 'due', '1001',
      'auditHead', head, 'auditCount', '2')
  elseif comp == 'hash_short' then
    -- short names; id and startedAt derived from the key; 0, "{}", currentTick == startTick omitted
    redis.call('HSET', base .. ':r:' .. id, 'p', 'bench', 'v', '1', 'c', cid(i), 's', 'waiting', 'st', 'pause',
      'n', '1', 'r', '3', 't', '1', 'ct', contact(i), 'd', '1001', 'h', head, 'a', '2')
  elseif comp == 'hash_short_b64' then
    redis.call('HSET', base .. ':r:' .. id, 'p', 'bench', 'v', '1', 'c', cid(i), 's', 'w', 'st', 'pause',
      'n', '1', 'r', '3', 't', '1', 'ct', contact(i), 'd', '1001', 'h', string.sub(head, 1, 43), 'a', '2')
  elseif comp == 'packed' then
    -- bucket hash of nb consecutive runs, field = index within the id, value = positional fields
    local v = 'waiting|bench|1|' .. cid(i) .. '|pause|1|3|0|1||||1001||||2|' .. head .. '|' .. contact(i) .. '|{}|'
    redis.call('HSET', base .. ':runs:' .. math.floor(i / nb), string.sub(id, 14), v)
  elseif comp == 'zset' then
    redis.call('ZADD', base .. ':idx:status:waiting', ms(i), id)
  elseif comp == 'zset_bucket' then
    -- listpack buckets of nb consecutive runs, with a count per bucket and per 128 buckets
    local b = math.floor(i / nb)
    redis.call('ZADD', base .. ':ix:w:' .. b, ms(i), id)
    redis.call('HINCRBY', base .. ':ix:w:n', b, 1)
    redis.call('HINCRBY', base .. ':ix:w:n', 's' .. math.floor(b / 128), 1)
  elseif comp == 'contact_keys' then
    redis.call('ZADD', base .. ':idx:contact:' .. cid(i), ms(i), id)
  elseif comp == 'contact_buckets' then
    -- hash bucket crc(contact) mod nb: field contactId, value its run ids (space-separated)
    redis.call('HSET', base .. ':cx:' .. (i * 2654435761 % nb), cid(i), id)
  elseif comp == 'contact_buckets_enroll' then
    -- the same, each id followed by its plan when open: the enrollment record folded in
    redis.call('HSET', base .. ':cx:' .. (i * 2654435761 % nb), cid(i), id .. ' bench')
  elseif comp == 'enroll' then
    redis.call('HSET', base .. ':enroll', 'bench:' .. cid(i), id)
  elseif comp == 'enroll_buckets' then
    redis.call('HSET', base .. ':en:' .. (i * 2654435761 % nb), 'bench:' .. cid(i), id)
  elseif comp == 'due' then
    redis.call('ZADD', base .. ':due', 1001, id)
  end
end
return to - from

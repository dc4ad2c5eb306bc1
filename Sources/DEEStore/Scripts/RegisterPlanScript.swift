/// Registers a plan version in the registry, idempotently by content hash.
enum RegisterPlanScript {
    static let source = #"""
-- register_plan.lua: register a plan's content as its next version, or return the version that has it.
-- KEYS[1]  <prefix>:{plans}:plan:<planId>   (hash: latest, name, v<n> -> JSON, h:<hash> -> n)
-- KEYS[2]  <prefix>:{plans}:ids             (set of plan ids)
-- KEYS[3]  <prefix>:{plans}:req:<key>       (the stored result for this request)
-- ARGV[1]  content hash   ARGV[2]  canonical plan JSON   ARGV[3]  plan name   ARGV[4]  plan id
-- ARGV[5]  request fingerprint   ARGV[6]  dedupe TTL seconds
-- Stores "fingerprint\n{ok, result}" under KEYS[3] for the dedupe window, as the partitions' records are.
-- Returns {version, created (1/0), stored}: stored is the earlier record when this request was applied
-- before (then nothing is written), else "".
local stored = redis.call('GET', KEYS[3])
if stored then return {0, 0, stored} end
local v = redis.call('HGET', KEYS[1], 'h:' .. ARGV[1])
local created = 0
if not v then
  v = redis.call('HINCRBY', KEYS[1], 'latest', 1)
  redis.call('HSET', KEYS[1], 'v' .. v, ARGV[2], 'h:' .. ARGV[1], v, 'name', ARGV[3])
  redis.call('SADD', KEYS[2], ARGV[4])
  created = 1
end
local result = '{"ok":true,"result":{"created":' .. (created == 1 and 'true' or 'false') .. ',"planId":' ..
  cjson.encode(ARGV[4]) .. ',"version":' .. v .. '}}'
redis.call('SET', KEYS[3], ARGV[5] .. '\n' .. result, 'EX', tonumber(ARGV[6]))
return {tonumber(v), created, ''}
"""#
}

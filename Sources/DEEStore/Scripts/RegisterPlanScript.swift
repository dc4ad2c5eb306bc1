/// Registers a plan version in the registry: a new version unless the content equals the latest version's.
enum RegisterPlanScript {
    static let source = #"""
-- register_plan.lua: register a plan's content as its next version, unless it equals the latest version's.
-- KEYS[1]  <prefix>:{plans}:plan:<planId>   (hash: latest, name, v<n> -> JSON, h:<hash> -> the newest version
--                                            with that content)
-- KEYS[2]  <prefix>:{plans}:ids             (set of plan ids)
-- KEYS[3]  <prefix>:{plans}:req:<key>       (the stored result for this request; absent for an implicit
--                                            registration, which stores none)
-- ARGV[1]  content hash   ARGV[2]  canonical plan JSON   ARGV[3]  plan name   ARGV[4]  plan id
-- ARGV[5]  request fingerprint   ARGV[6]  dedupe TTL seconds
-- SPEC 2: content that differs from the LATEST version is version n+1, even when an older version had it
-- (A, B, A gives 1, 2, 3); only the latest version's content answers that version, created = false. The latest
-- version's content is the one whose h:<hash> names the latest version (h:<hash> is rewritten to the newest
-- version with that content, so an older version's hash never answers).
-- With KEYS[3], stores "fingerprint\n{ok, result}" there for the dedupe window, as the partitions' records are.
-- Returns {version, created (1/0), stored}: stored is the earlier record when this request was applied
-- before (then nothing is written), else "".
if KEYS[3] then
  local stored = redis.call('GET', KEYS[3])
  if stored then return {0, 0, stored} end
end
local v = redis.call('HGET', KEYS[1], 'latest')
local created = 0
if not v or redis.call('HGET', KEYS[1], 'h:' .. ARGV[1]) ~= v then
  v = redis.call('HINCRBY', KEYS[1], 'latest', 1)
  redis.call('HSET', KEYS[1], 'v' .. v, ARGV[2], 'h:' .. ARGV[1], v, 'name', ARGV[3])
  redis.call('SADD', KEYS[2], ARGV[4])
  created = 1
end
if KEYS[3] then
  local result = '{"ok":true,"result":{"created":' .. (created == 1 and 'true' or 'false') .. ',"planId":' ..
    cjson.encode(ARGV[4]) .. ',"version":' .. v .. '}}'
  redis.call('SET', KEYS[3], ARGV[5] .. '\n' .. result, 'EX', tonumber(ARGV[6]))
end
return {tonumber(v), created, ''}
"""#
}

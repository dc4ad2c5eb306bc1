/// Writes one computed change of one partition atomically: run state, indexes, enrollment, events, actions,
/// audit entries, the dedupe record, batch progress and the applied-entry watermark, together.
enum ApplyScript {
    static let source = #"""
-- apply.lua: write one computed change of one partition, atomically.
-- KEYS[1]  <prefix>:{p}:epoch. Every other key is <prefix>:{p}:<suffix>, derived from KEYS[1], so it is in
--          the same Redis Cluster slot.
-- ARGV[1]  the change, as JSON:
--   epoch    the writer's fencing epoch (string); refused when the partition's epoch differs
--   entry    the inbox entry id this change completes ("" for a batch of a longer command)
--   batch    {key, n, state}: progress of a batched command; refused when batch n was applied already
--   dedupe   {key, value, ttl}: the stored result of the command
--   share    {key, value, ttl}: this partition's share of a command split over partitions
--   runs     [{id, set=[f,v,...], del=[f,...], status, old, score, created, plan, contact, due, enroll}]
--            old: the status before the change ("" for a new run)
--            indexes kept: idx:status:<status>, idx:ps:<plan>:<status>, idx:contact:<contact>, due
--            due: the due tick, or -1 for none; enroll: "set" or "del"; head: the audit head it was computed from
--   events, actions   [[f,v,...], ...] entries for <base>:events and <base>:actions
--   audit    [[runId, entryJSON], ...] appended to <base>:audit:<runId>
--   plan     {key, json}: a plan version copied into the partition (written once)
--   suppress {contact, value} / unsuppress: contact id
--   clock    the partition's new clock
--   retention  seconds a terminal run's audit list is kept (absent: kept for the run's life)
--   maxlen   approximate MAXLEN of the event and action streams
-- Returns "OK", or an error reply: FENCED (another owner holds the partition), APPLIED (already applied,
-- nothing written).
local base = string.sub(KEYS[1], 1, -7)
local c = cjson.decode(ARGV[1])

if redis.call('GET', KEYS[1]) ~= c.epoch then
  return redis.error_reply('FENCED')
end

local function idnum(s)
  local ms, seq = string.match(s, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
if c.entry ~= '' then
  local applied = redis.call('GET', base .. ':applied')
  if applied then
    local am, as = idnum(applied)
    local em, es = idnum(c.entry)
    if em < am or (em == am and es <= as) then
      return redis.error_reply('APPLIED')
    end
  end
end
if c.batch then
  local done = tonumber(redis.call('HGET', base .. ':' .. c.batch.key, 'n') or '0')
  if c.batch.n <= done then
    return redis.error_reply('APPLIED')
  end
end
-- The epoch check above makes this process the partition's only writer, so the runs are as it read them:
-- their old status comes with the change rather than being read again.
local runs = c.runs or {}
for _, r in ipairs(runs) do
  local key = base .. ':run:' .. r.id
  local old = r.old
  if old == '' then old = false end
  if #r.set > 0 then redis.call('HSET', key, unpack(r.set)) end
  if #r.del > 0 then redis.call('HDEL', key, unpack(r.del)) end
  if old ~= r.status then
    if old then
      redis.call('ZREM', base .. ':idx:status:' .. old, r.id)
      redis.call('ZREM', base .. ':idx:ps:' .. r.plan .. ':' .. old, r.id)
    end
    redis.call('ZADD', base .. ':idx:status:' .. r.status, r.score, r.id)
    redis.call('ZADD', base .. ':idx:ps:' .. r.plan .. ':' .. r.status, r.score, r.id)
  end
  if r.created then
    redis.call('ZADD', base .. ':idx:contact:' .. r.contact, r.score, r.id)
  end
  if r.due >= 0 then
    redis.call('ZADD', base .. ':due', r.due, r.id)
  else
    redis.call('ZREM', base .. ':due', r.id)
  end
  local ekey = r.plan .. ':' .. r.contact
  if r.enroll == 'set' then
    redis.call('HSET', base .. ':enroll', ekey, r.id)
  elseif r.enroll == 'del' then
    if redis.call('HGET', base .. ':enroll', ekey) == r.id then
      redis.call('HDEL', base .. ':enroll', ekey)
    end
  end
end
for _, e in ipairs(c.events or {}) do
  redis.call('XADD', base .. ':events', 'MAXLEN', '~', c.maxlen, '*', unpack(e))
end
for _, a in ipairs(c.actions or {}) do
  redis.call('XADD', base .. ':actions', 'MAXLEN', '~', c.maxlen, '*', unpack(a))
end
for _, a in ipairs(c.audit or {}) do
  redis.call('RPUSH', base .. ':audit:' .. a[1], a[2])
end
if c.retention then
  for _, r in ipairs(runs) do
    if r.status == 'completed' or r.status == 'failed' or r.status == 'cancelled' then
      redis.call('EXPIRE', base .. ':audit:' .. r.id, c.retention)
    end
  end
end
if c.plan then
  redis.call('SET', base .. ':' .. c.plan.key, c.plan.json, 'NX')
end
if c.suppress then
  redis.call('HSET', base .. ':suppressed', c.suppress.contact, c.suppress.value)
end
if c.unsuppress then
  redis.call('HDEL', base .. ':suppressed', c.unsuppress)
end
if c.clock then
  redis.call('SET', base .. ':clock', c.clock)
end
if c.share then
  redis.call('SET', base .. ':' .. c.share.key, c.share.value, 'EX', c.share.ttl)
end
if c.entry ~= '' then
  redis.call('SET', base .. ':applied', c.entry)
  if c.dedupe then
    redis.call('SET', base .. ':' .. c.dedupe.key, c.dedupe.value, 'EX', c.dedupe.ttl)
  end
  if c.batch then redis.call('DEL', base .. ':' .. c.batch.key) end
elseif c.batch then
  redis.call('HSET', base .. ':' .. c.batch.key, 'n', c.batch.n, 'state', c.batch.state)
  redis.call('EXPIRE', base .. ':' .. c.batch.key, 604800)
end
return 'OK'
"""#
}

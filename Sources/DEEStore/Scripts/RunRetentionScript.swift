/// Removes finished runs older than the retention, one bounded batch per call (Sources/DEEService/Retention/
/// RunRetention.swift says who calls it and when).
///
/// Candidates come from two places, oldest first: the backfill set (runs that finished before the finished list
/// existed, found once by ``RunRetentionBackfillScript``), then the head of the finished list, which the apply
/// script appends to in completion order. Each candidate is read again here, inside the script: only a run that is
/// still terminal and whose own `completedAt` is at least the retention before Redis's clock is removed. Anything
/// else (its hash gone, another type, an open status, a `completedAt` that is not a number) is skipped and named
/// in the reply, never a failure: a partition's retention must not stop on one bad run.
///
/// A script does not roll back, so nothing may fail after its first write: the run hash and the contact's index
/// are touched with `pcall` (a key of another type skips the run, nothing written for it), the other keys are
/// type-checked before, and the rest of the removals are grouped, one command per key, after every candidate was
/// checked. A partition-wide key of another type refuses the whole call before any write. Measured here
/// (`INFO commandstats`, 20,000 runs removed, the 2-core machine at load 7-8): 2.1 ms per call of 100, ~21 µs per
/// run, of which HMGET 1.7, the contact index ZREM ~4 (the key goes with its last member), DEL of hash and audit
/// ~1.2. (One call per run per key measured 9.5 ms per 500, about the same per run: the batch size, not the
/// grouping, is what bounds a call.)
enum RunRetentionScript {
    static let source = #"""
-- run_retention.lua: remove finished runs older than the retention, at most ARGV[4] candidates per call.
-- KEYS[1]  <prefix>:{p}:epoch. Every other key is <prefix>:{p}:<suffix>, derived from KEYS[1], so it is in the
--          same Redis Cluster slot: finished (list), finished:backfill (zset), retention (hash), run:<id>,
--          audit:<id>, idx:status:<s>, idx:ps:<plan>:<s>, cx:<bucket> (the contact's record, ContactRecords),
--          due (zset); layout 2's idx:contact:<contact> and enroll (hash) until dee migrate folds them; and
--          layout 4's bmap, nruns, nlegacy, ixs:<s>[:<b>], ixp:<plan>:<s>[:<b>] (Scripts/IndexKeysLua.swift); layout
--          5's dueb:<b> and duedir.
-- ARGV[1]  the caller's fencing epoch; refused (FENCED, nothing written) when the partition's epoch differs
-- ARGV[2]  the retention, ms (a whole number >= 1)
-- ARGV[3]  now, epoch ms, or "": Redis's clock (TIME), which is where entry ids, hence completedAt, come from
-- ARGV[4]  candidates examined at most (removed or skipped)
-- A run is removed when its hash says status (field s, or status in layout 1) completed, failed or cancelled and
-- completedAt (ca, or completedAt) + ARGV[2] <= now:
-- its hash, its audit list, its entries in its status and plan+status index (the buckets and their counts, or the
-- layout-2 sets for a run not migrated yet) and the due schedule (an entry left behind), its token in its contact's record (the field goes with its
-- last token), and in layout 2's idx:contact and enroll if still there. The finished list is read from its head
-- and stops at the first run not due yet (the list
-- is in completion order); the backfill set is read by score up to now - ARGV[2].
-- Returns {removed, examined, more (1: the budget ran out), next due ms or '', now, gone, then per skipped run:
-- id, reason}; reasons: gone, wrongtype, open, completedAt, corrupt, wrongtype:<suffix>. `gone` counts list
-- entries whose hash no longer exists (removed from the backfill set already, or deleted by an operator): nothing
-- to remove and nothing wrong, so not a skip; a backfill-set entry whose hash is gone is a skip.
-- Errors: FENCED; BACKFILL (the one-time backfill of this partition is not finished: nothing removed, since the
-- backfill walks the status indexes by rank); BADTYPE <suffix> (a partition-wide key of another type: nothing
-- written); BADARG.
\#(ContactRecordsLua.bucket)
\#(ContactRecordsLua.edit)
local base = string.sub(KEYS[1], 1, -7)
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('FENCED') end
local retention, budget = tonumber(ARGV[2]), tonumber(ARGV[4])
if not retention or retention < 1 or not budget or budget < 1 then return redis.error_reply('BADARG') end
local now = tonumber(ARGV[3])
if ARGV[3] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
if not now then return redis.error_reply('BADARG') end
local cutoff = now - retention
-- As a whole number (Lua prints large numbers with 14 significant digits).
local cutoffText = string.format('%d', cutoff)
local types = {}
local function typeOf(key)
  local t = types[key]
  if t == nil then
    t = redis.call('TYPE', key)['ok']
    types[key] = t
  end
  return t
end
local wanted = {finished = 'list', ['finished:backfill'] = 'zset', retention = 'hash', due = 'zset', duedir = 'zset', enroll = 'hash'}
for suffix, t in pairs(wanted) do
  local have = typeOf(base .. ':' .. suffix)
  if have ~= 'none' and have ~= t then return redis.error_reply('BADTYPE ' .. suffix) end
end
if redis.call('HGET', base .. ':retention', 'bf') ~= 'done' then return redis.error_reply('BACKFILL') end
-- Lua's unpack() fails near 8,000 values: the grouped writes below stay under it.
if budget > 1000 then budget = 1000 end
local terminal = {completed = true, failed = true, cancelled = true}
local out = {0, 0, 0, '', now, 0}
local removed, examined, skipped, gone = 0, 0, 0, 0
local function skip(id, reason)
  skipped = skipped + 1
  table.insert(out, id)
  table.insert(out, reason)
end
-- completedAt as stored: a whole number of ms below 2^53, else nil (an operator's edit).
local function ms(text)
  if type(text) ~= 'string' or not string.match(text, '^%d+$') or #text > 15 then return nil end
  return tonumber(text)
end
-- Whether a pcall answered an error.
local function failed(reply)
  return type(reply) == 'table' and reply['err'] ~= nil
end
-- Removals are grouped, one command per key, after every candidate was checked (each key's type is known by
-- then, so none can fail): index key -> ids, and the keys to delete.
local zrem, zremOrder, dels, enrollments, doomed = {}, {}, {}, {}, {}
local function later(suffix, id)
  local key = base .. ':' .. suffix
  if not zrem[key] then
    zrem[key] = {}
    table.insert(zremOrder, key)
  end
  table.insert(zrem[key], id)
end
-- Layout 4 (Scripts/IndexKeysLua.swift): the bucket of a run id (nil: below every bucket, in the layout-2 sets),
-- the count decrements of the removals (hash -> field -> n), and the buckets touched.
local bmap = base .. ':bmap'
local function bucketOf(id)
  local m = redis.call('ZRANGE', bmap, '[' .. id .. ' ~', '-', 'BYLEX', 'REV', 'LIMIT', 0, 1)[1]
  if not m then return nil end
  return tonumber(string.match(m, ' (%-?%d+)$')), m
end
\#(IndexKeysLua.countFields)
\#(IndexKeysLua.dueDirectory)
local decrements, dorder, touched, dueTouched = {}, {}, {}, {}
local function uncount(hash, b)
  if not decrements[hash] then
    decrements[hash] = {}
    table.insert(dorder, hash)
  end
  for _, f in ipairs(countFields(b)) do
    decrements[hash][f] = (decrements[hash][f] or 0) + 1
  end
end
-- One candidate: 'removed', 'notdue' (with its completedAt), 'gone' (listed, hash gone), or 'skipped'.
-- Per run: one HMGET, the read of its contact's record and the ZREM of a layout-2 contact index, all with pcall
-- (a key of another type answers an error instead of stopping the script), then nothing that can fail (the
-- record, read as a hash, can be written back).
local function consider(id, listed)
  local key = base .. ':run:' .. id
  -- Layout 2's short names, else layout 1's (a run hash dee migrate has not reached yet; docs/MEMORY.md).
  local f = doomed[id] and {} or
    redis.pcall('HMGET', key, 's', 'ca', 'p', 'c', 'status', 'completedAt', 'planId', 'contactId')
  if failed(f) then skip(id, 'wrongtype') return 'skipped' end
  local status, completedAt, planId, contactId = f[1] or f[5], f[2] or f[6], f[3] or f[7], f[4] or f[8]
  if not status and not completedAt and not planId and not contactId then
    if listed then
      gone = gone + 1
      return 'gone'
    end
    skip(id, 'gone')
    return 'skipped'
  end
  if not status or not terminal[status] then skip(id, 'open') return 'skipped' end
  local at = ms(completedAt)
  if not at then skip(id, 'completedAt') return 'skipped' end
  if at > cutoff then return 'notdue', at, completedAt end
  if not planId or not contactId then skip(id, 'corrupt') return 'skipped' end
  local b, member = bucketOf(id)
  local status_, ps = 'idx:status:' .. status, 'idx:ps:' .. planId .. ':' .. status
  local countsOf = {}
  if b then
    countsOf[1], countsOf[2] = 'ixs:' .. status, 'ixp:' .. planId .. ':' .. status
    status_, ps = countsOf[1] .. ':' .. b, countsOf[2] .. ':' .. b
  end
  for _, suffix in ipairs({status_, ps}) do
    local it = typeOf(base .. ':' .. suffix)
    if it ~= 'none' and it ~= 'zset' then skip(id, 'wrongtype:' .. suffix) return 'skipped' end
  end
  for _, suffix in ipairs(countsOf) do
    local it = typeOf(base .. ':' .. suffix)
    if it ~= 'none' and it ~= 'hash' then skip(id, 'wrongtype:' .. suffix) return 'skipped' end
  end
  local dueb = b and ('dueb:' .. b) or nil
  if dueb then
    local it = typeOf(base .. ':' .. dueb)
    if it ~= 'none' and it ~= 'zset' then skip(id, 'wrongtype:' .. dueb) return 'skipped' end
  end
  local cx = 'cx:' .. contactBucket(contactId)
  local record = redis.pcall('HGET', base .. ':' .. cx, contactId)
  if failed(record) then skip(id, 'wrongtype:' .. cx) return 'skipped' end
  local contact = 'idx:contact:' .. contactId
  if failed(redis.pcall('ZREM', base .. ':' .. contact, id)) then skip(id, 'wrongtype:' .. contact) return 'skipped' end
  if record then
    local rest = cxRemove(record, id)
    if rest then
      redis.call('HSET', base .. ':' .. cx, contactId, rest)
    else
      redis.call('HDEL', base .. ':' .. cx, contactId)
    end
  end
  later(status_, id)
  later(ps, id)
  if b then
    -- Counted only where the run is listed, so a count never goes below what its bucket holds.
    for i, suffix in ipairs({status_, ps}) do
      if redis.call('ZSCORE', base .. ':' .. suffix, id) then uncount(countsOf[i], b) end
    end
    touched[b] = member
  end
  later('due', id)
  -- A terminal run is not scheduled; an entry left behind in its bucket goes with it (layout 5).
  if dueb then
    later(dueb, id)
    dueTouched[b] = true
  end
  table.insert(enrollments, planId .. ':' .. contactId)
  table.insert(enrollments, id)
  table.insert(dels, key)
  table.insert(dels, base .. ':audit:' .. id)
  doomed[id] = true
  removed = removed + 1
  return 'removed'
end
-- The backfill set first: runs that finished before the list existed are older than anything in it.
local backlog = base .. ':finished:backfill'
local done = {}
for _, id in ipairs(redis.call('ZRANGE', backlog, '-inf', cutoffText, 'BYSCORE', 'LIMIT', 0, budget)) do
  examined = examined + 1
  local r, _, text = consider(id, false)
  if r == 'notdue' then
    -- Its hash says it finished later than the set did: wait for that.
    redis.call('ZADD', backlog, text, id)
  else
    table.insert(done, id)
  end
end
if #done > 0 then redis.call('ZREM', backlog, unpack(done)) end
local list = base .. ':finished'
local popped = 0
if examined < budget then
  local ids = redis.call('LRANGE', list, 0, budget - examined - 1)
  for _, id in ipairs(ids) do
    local r, at = consider(id, true)
    if r == 'notdue' then
      out[4] = at + retention
      break
    end
    popped = popped + 1
  end
  examined = examined + popped
  if popped > 0 then redis.call('LTRIM', list, popped, -1) end
end
for _, key in ipairs(zremOrder) do redis.call('ZREM', key, unpack(zrem[key])) end
for b in pairs(dueTouched) do setDueHead(base, b) end
for _, suffix in ipairs(dorder) do
  local key = base .. ':' .. suffix
  for f, n in pairs(decrements[suffix]) do
    if redis.call('HINCRBY', key, f, -n) <= 0 then redis.call('HDEL', key, f) end
  end
end
-- A bucket no run can join any more (numbered past it) and left empty by these removals leaves bmap, so bmap
-- does not grow with every run ever created; its range of ids then reads as the bucket below's (it holds none).
local created = tonumber(redis.call('GET', base .. ':nruns')) or 0
local legacy = tonumber(redis.call('GET', base .. ':nlegacy')) or 0
for b, member in pairs(touched) do
  if (b >= 0 and 128 * (b + 1) <= created) or (b < 0 and -128 * b <= legacy) then
    local empty = true
    for _, s in ipairs({'pending', 'active', 'waiting', 'paused', 'completed', 'failed', 'cancelled'}) do
      if redis.call('EXISTS', base .. ':ixs:' .. s .. ':' .. b) == 1 then
        empty = false
        break
      end
    end
    -- A bucket of layout 5's due schedule still holding an entry (state left behind: a terminal run is never
    -- due) keeps its bmap member, so the tick that finds the entry's run gone takes it out of the right bucket.
    if empty and redis.call('EXISTS', base .. ':dueb:' .. b) == 0 then redis.call('ZREM', bmap, member) end
  end
end
for i = 1, #enrollments, 2 do
  if redis.call('HGET', base .. ':enroll', enrollments[i]) == enrollments[i + 1] then
    redis.call('HDEL', base .. ':enroll', enrollments[i])
  end
end
if #dels > 0 then redis.call('DEL', unpack(dels)) end
if out[4] == '' then
  local first = redis.call('ZRANGE', backlog, 0, 0, 'WITHSCORES')
  if first[2] then out[4] = tonumber(first[2]) + retention end
end
-- A counter an operator overwrote with something else starts again from this batch, rather than failing it.
for field, n in pairs({removed = removed, skipped = skipped}) do
  if n > 0 and failed(redis.pcall('HINCRBY', base .. ':retention', field, n)) then
    redis.call('HSET', base .. ':retention', field, n)
  end
end
out[1], out[2], out[3], out[6] = removed, examined, examined >= budget and 1 or 0, gone
return out
"""#

    /// What is sent: the source without comment lines or indentation (as ``ApplyScript/body``).
    static let body: String = source.split(separator: "\n")
        .map { $0.drop { $0 == " " } }
        .filter { !$0.hasPrefix("--") && !$0.isEmpty }
        .joined(separator: "\n")
}

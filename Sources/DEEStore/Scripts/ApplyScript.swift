/// Writes one computed change of one partition atomically: run state, indexes, enrollment, events, actions,
/// audit entries, the dedupe record, batch progress and the applied-entry watermark, together.
///
/// The shell (``ChangeSet/arguments(epoch:maxlen:)``) turns the core's changes into a flat list of writes, index
/// writes grouped per key; the script checks the fence and the watermark, checks the list's shape, then performs
/// it. Flat ARGV rather than a JSON document: decoding JSON in Lua and one `redis.call` per run per index were the
/// largest costs in Redis's profile (docs/PERFORMANCE.md).
enum ApplyScript {
    static let source = #"""
-- apply.lua: write one computed change of one partition, atomically.
-- KEYS[1]  <prefix>:{p}:epoch. Every other key is <prefix>:{p}:<suffix>, derived from KEYS[1], so it is in
--          the same Redis Cluster slot.
-- ARGV[1]  the writer's fencing epoch; refused (FENCED) when the partition's epoch differs
-- ARGV[2]  the (first) inbox entry id this change completes, or "" for a batch of a longer command; refused
--          (APPLIED) when the partition's applied-entry watermark is at or past it
-- ARGV[3]  the last entry id it completes (the same, or the last of consecutive commands written together):
--          the watermark moves to it
-- ARGV[4]  the key suffix of a batched command's progress hash, or ""
-- ARGV[5]  the batch number; refused (APPLIED) when batch n was applied already, and (BATCHGAP, nothing
--          written) unless it follows the last one applied: a batch sent while its predecessor failed must not
--          count it as done
-- ARGV[6]  the batch's state (JSON), stored with n while the command is unfinished
-- ARGV[7]  approximate MAXLEN of streams written with XADD
-- ARGV[8]  the applied-entry watermark this change must follow, or "": refused (GAP, nothing written) unless the
--          watermark is exactly this id. The owner sends a group's next chunk before the previous one's answer
--          (CommandBatching); if that one was refused, this one must not apply past it.
-- ARGV[9…] writes, each: command, key suffix, argument count c, then c arguments. Commands: HSET, HDEL, ZADD,
--          ZREM, RPUSH, SET, EXPIRE, XADD (written as XADD key MAXLEN ~ ARGV[7] * fields), XADDKEEP (XADD key *
--          fields, never trimmed here: the actions stream, which the actions retention service trims only below
--          what every executor group has acknowledged), XADDID (XADD key id
--          fields: an entry under an id of our own, never trimmed here, skipped when the stream already reaches
--          that id, as after a script that failed past it), HDELIF (pairs of field, value: the field is deleted
--          only while it holds that value), CXADD (pairs of contact id, token: the token is appended to the
--          contact's field of a cx:<bucket> record, space-separated), CXDONE (pairs of contact id, run id: the run's
--          token in the record loses its "/<plan>" tag; records: Sources/DEEStore/ContactRecords.swift), IX (the
--          status and plan+status index moves of the set, key suffix "bmap", arguments in fives: run id, planId,
--          old status ("" for a run created here), new status, startedAt ms; see below), DUE (key suffix "duedir",
--          pairs of run id and due tick, "" to unschedule: layout 5's due schedule, IndexKeysLua.dueMoves; after
--          the IX writes, which number the set's created runs).
-- IX (layout 4, docs/MEMORY.md): a created run takes the partition's next number n (nruns, INCRBY once per IX),
-- bucket b = floor(n / 128), and bmap gets "<id> <b>" when it opens bucket b; an existing run's bucket is the
-- bmap member with the highest first id at or below its id. Each move is ZREM/ZADD in ixs:<s>:<b> and
-- ixp:<plan>:<s>:<b> (one command per key) and HINCRBY of fields <b>, s<floor(b/128)> and all of the count hashes
-- ixs:<s> and ixp:<plan>:<s> (a field that reaches 0 is deleted). A run below every bucket (written before layout
-- 4, not migrated yet) moves between the layout-2 sets idx:status:<s> and idx:ps:<plan>:<s>, since a bucket holds
-- only its own range of ids.
-- Returns "OK", or an error reply: FENCED, APPLIED, GAP, BATCHGAP, BADWRITE (malformed list); none writes anything.
local base = string.sub(KEYS[1], 1, -7)
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('FENCED')
end
local entry, through, bkey = ARGV[2], ARGV[3], ARGV[4]
-- Whether stream id a is at or below stream id b.
local function atOrBelow(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as <= bs)
end
if entry ~= '' then
  local applied = redis.call('GET', base .. ':applied')
  if applied and atOrBelow(entry, applied) then
    return redis.error_reply('APPLIED')
  end
end
if ARGV[8] ~= '' and redis.call('GET', base .. ':applied') ~= ARGV[8] then
  return redis.error_reply('GAP')
end
if bkey ~= '' then
  local done = tonumber(redis.call('HGET', base .. ':' .. bkey, 'n') or '0')
  if tonumber(ARGV[5]) <= done then return redis.error_reply('APPLIED') end
  if tonumber(ARGV[5]) ~= done + 1 then return redis.error_reply('BATCHGAP') end
end
-- The whole list is checked before the first write, so a malformed one writes nothing.
local known = {HSET = 1, HDEL = 1, ZADD = 1, ZREM = 1, RPUSH = 1, SET = 1, EXPIRE = 1, XADD = 1, XADDKEEP = 1, XADDID = 1, HDELIF = 1, CXADD = 1, CXDONE = 1, IX = 1, DUE = 1}
local n, i = #ARGV, 9
while i <= n do
  local c = tonumber(ARGV[i + 2])
  if not known[ARGV[i]] or not c or c < 1 or i + 2 + c > n or (ARGV[i] == 'IX' and c % 5 ~= 0) or (ARGV[i] == 'DUE' and c % 2 ~= 0) then
    return redis.error_reply('BADWRITE at ARGV[' .. i .. ']')
  end
  i = i + 3 + c
end
-- IX: the index moves of ARGV[first..last] (fives), grouped per key.
\#(IndexKeysLua.countFields)
\#(IndexKeysLua.countTally)
\#(IndexKeysLua.bucketLookup)
\#(IndexKeysLua.dueDirectory)
\#(IndexKeysLua.dueMoves)
local function indexMoves(first, last)
  local bmap = base .. ':bmap'
  local created = 0
  for j = first, last, 5 do
    if ARGV[j + 2] == '' then created = created + 1 end
  end
  local n = 0
  if created > 0 then n = redis.call('INCRBY', base .. ':nruns', created) - created end
  local rem, add, order = {}, {}, {}
  -- No table per push and the bucket's name made once (see countTally): a tick step makes four index moves.
  local function push(t, key, a, v)
    local l = t[key]
    if not l then
      if not rem[key] and not add[key] then table.insert(order, key) end
      l = {}
      t[key] = l
    end
    l[#l + 1] = a
    if v ~= nil then l[#l + 1] = v end
  end
  local names = {}
  for j = first, last, 5 do
    local id, plan, from, to, score = ARGV[j], ARGV[j + 1], ARGV[j + 2], ARGV[j + 3], ARGV[j + 4]
    local b
    if from == '' then
      b = math.floor(n / 128)
      if n % 128 == 0 then
        redis.call('ZADD', bmap, 0, id .. ' ' .. b)
        forgetBucket()
      end
      n = n + 1
    else
      b = bucketOf(bmap, id)
    end
    if b == nil then
      push(rem, base .. ':idx:status:' .. from, id)
      push(rem, base .. ':idx:ps:' .. plan .. ':' .. from, id)
      push(add, base .. ':idx:status:' .. to, score, id)
      push(add, base .. ':idx:ps:' .. plan .. ':' .. to, score, id)
    else
      local bs = names[b]
      if not bs then
        bs = ':' .. string.format('%d', b)
        names[b] = bs
      end
      local s, p = base .. ':ixs:', base .. ':ixp:' .. plan .. ':'
      if from ~= '' then
        local sf, pf = s .. from, p .. from
        push(rem, sf .. bs, id)
        push(rem, pf .. bs, id)
        tally(sf, b, -1)
        tally(pf, b, -1)
      end
      local st, pt = s .. to, p .. to
      push(add, st .. bs, score, id)
      push(add, pt .. bs, score, id)
      tally(st, b, 1)
      tally(pt, b, 1)
    end
  end
  for _, key in ipairs(order) do
    if rem[key] then redis.call('ZREM', key, unpack(rem[key])) end
  end
  for _, key in ipairs(order) do
    if add[key] then redis.call('ZADD', key, unpack(add[key])) end
  end
  writeTally()
end
local maxlen, tops = ARGV[7], {}
i = 9
while i <= n do
  local op, key, last = ARGV[i], base .. ':' .. ARGV[i + 1], i + 2 + tonumber(ARGV[i + 2])
  if op == 'XADD' then
    redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', unpack(ARGV, i + 3, last))
  elseif op == 'XADDKEEP' then
    redis.call('XADD', key, '*', unpack(ARGV, i + 3, last))
  elseif op == 'XADDID' then
    if tops[key] == nil then
      local top = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)[1]
      tops[key] = top and top[1] or false
    end
    if not tops[key] or not atOrBelow(ARGV[i + 3], tops[key]) then
      redis.call('XADD', key, unpack(ARGV, i + 3, last))
      tops[key] = ARGV[i + 3]
    end
  elseif op == 'CXADD' then
    for j = i + 3, last - 1, 2 do
      local v = redis.call('HGET', key, ARGV[j])
      redis.call('HSET', key, ARGV[j], v and (v .. ' ' .. ARGV[j + 1]) or ARGV[j + 1])
    end
  elseif op == 'CXDONE' then
    for j = i + 3, last - 1, 2 do
      local v = redis.call('HGET', key, ARGV[j])
      if v then
        local s = ' ' .. v .. ' '
        local a = string.find(s, ' ' .. ARGV[j + 1] .. '/', 1, true)
        if a then
          local b = string.find(s, ' ', a + 1, true)
          redis.call('HSET', key, ARGV[j], string.sub(s, 2, a + #ARGV[j + 1]) .. string.sub(s, b, -2))
        end
      end
    end
  elseif op == 'IX' then
    indexMoves(i + 3, last)
  elseif op == 'DUE' then
    dueMoves(base, ARGV, i + 3, last)
  elseif op == 'HDELIF' then
    for j = i + 3, last - 1, 2 do
      if redis.call('HGET', key, ARGV[j]) == ARGV[j + 1] then
        redis.call('HDEL', key, ARGV[j])
      end
    end
  else
    redis.call(op, key, unpack(ARGV, i + 3, last))
  end
  i = last + 1
end
if entry ~= '' then
  redis.call('SET', base .. ':applied', through)
  if bkey ~= '' then redis.call('DEL', base .. ':' .. bkey) end
elseif bkey ~= '' then
  redis.call('HSET', base .. ':' .. bkey, 'n', ARGV[5], 'state', ARGV[6])
  redis.call('EXPIRE', base .. ':' .. bkey, 604800)
end
return 'OK'
"""#

    /// What is sent: the source without comment lines or indentation. `EVAL` carries the body with every call and
    /// Redis hashes it each time (a 5 KB body cost ~10 µs of Redis per call, measured with redis-benchmark).
    static let body: String = source.split(separator: "\n")
        .map { $0.drop { $0 == " " } }
        .filter { !$0.hasPrefix("--") && !$0.isEmpty }
        .joined(separator: "\n")
}

/// Lua shared by the scripts that read the run indexes (query.lua, seek.lua): the status and plan+status indexes of
/// layout 4 (docs/MEMORY.md, "Bucketed indexes"), read as one ordered sequence of run ids per filter, with exact
/// counts and reads by position. Interpolated into each script after its header.
///
/// A partition's runs are numbered at creation (`nruns`) and bucket b holds runs 128b … 128b+127, so buckets are
/// contiguous ranges of run ids (ids are made in creation order). `bmap` (score 0, member `<first id> <b>`) names
/// each bucket's lowest id: the bucket of any id or bound is the member with the highest first id at or below it
/// (a ZRANGE BYLEX). One index, `ixs:<s>` (status) or `ixp:<plan>:<s>` (plan and status), is a count hash (field
/// `<b>` → runs in bucket b, `s<g>` → runs in buckets 128g … 128g+127, `all` → every run) and a sorted set per
/// bucket (`ixs:<s>:<b>`, score startedAt ms, ≤ 128 members: always a listpack). Runs written before layout 4 stay
/// in the old sorted set (`idx:status:<s>`, `idx:ps:<plan>:<s>`) until `dee migrate` moves them; they are all below
/// the lowest bucket (the migration numbers them downwards from -1, highest id first), so the old set reads as one
/// more segment under every bucket, and reading both is always right.
///
/// A filter asks k ≤ 7 indexes that share the bucket numbering: their union is read segment by segment (a bucket of
/// every index together, ≤ 7 × 128 ids, sorted in Lua). Positions count from the highest id ("descending
/// positions"); a count or a position costs one HMGET per index of ≤ 128 bucket counts and the 128-bucket sums
/// above it, plus a ZCOUNT or a rank search inside one bucket.
enum IndexKeysLua {
    /// `countFields(b)`: the fields of an index's count hash that count bucket b (the bucket, its group of 128, the
    /// whole index). The apply, migration and run retention scripts interpolate it, so they count the same fields.
    static let countFields = #"""
local function countFields(b) return {tostring(b), 's' .. math.floor(b / 128), 'all'} end
"""#

    /// `tally(hash, b, d)`: adds d to the count fields of bucket b (``countFields``) in count hash `hash`, summed per
    /// field over the script, each (hash, bucket)'s field names made once (in Redis's Lua a table costs ~1 µs and a
    /// number made a string ~0.5 µs, per run otherwise); `writeTally()`: one HINCRBY per field in first-use order, a
    /// field that reaches 0 deleted, and the tally emptied. The apply script (IX) and the index migration share it.
    /// Needs ``countFields``.
    static let countTally = #"""
local tallyDeltas, tallyOrder, tallyNames = {}, {}, {}
local function tally(hash, b, d)
  local byBucket = tallyNames[hash]
  if not byBucket then
    byBucket = {}
    tallyNames[hash] = byBucket
  end
  local names = byBucket[b]
  if not names then
    names = {}
    for j, f in ipairs(countFields(b)) do
      local k = hash .. '\0' .. f
      if not tallyDeltas[k] then
        tallyDeltas[k] = 0
        table.insert(tallyOrder, {hash, f, k})
      end
      names[j] = k
    end
    byBucket[b] = names
  end
  for j = 1, #names do tallyDeltas[names[j]] = tallyDeltas[names[j]] + d end
end
local function writeTally()
  for _, c in ipairs(tallyOrder) do
    local d = tallyDeltas[c[3]]
    if d ~= 0 and redis.call('HINCRBY', c[1], c[2], d) == 0 then redis.call('HDEL', c[1], c[2]) end
  end
  tallyDeltas, tallyOrder, tallyNames = {}, {}, {}
end
"""#

    /// `bucketOf(bmap, id)`: the creation bucket of run `id` (bmap's member with the highest first id at or below it),
    /// or nil below every bucket; cached for the ids of one bucket, so a batch of consecutive runs costs one lookup.
    /// A script that opens a bucket calls `forgetBucket()`. The apply script (IX, DUE) and the due migration share it.
    static let bucketLookup = #"""
local bLo, bHi, bCur
local function bucketOf(bmap, id)
  if bCur and id >= bLo and (not bHi or id < bHi) then return bCur end
  local m = redis.call('ZRANGE', bmap, '[' .. id .. ' ~', '-', 'BYLEX', 'REV', 'LIMIT', 0, 1)[1]
  if not m then return nil end
  local nxt = redis.call('ZRANGE', bmap, '(' .. m, '+', 'BYLEX', 'LIMIT', 0, 1)[1]
  bLo, bCur = string.match(m, '^(.*) (%-?%d+)$')
  bCur = tonumber(bCur)
  bHi = nxt and string.match(nxt, '^(.*) ') or nil
  return bCur
end
local function forgetBucket() bCur = nil end
"""#

    /// `dueMember(b)`: bucket b's member in `duedir` (see ``dueMoves``); `setDueHead(base, b)`: bucket b's `duedir`
    /// entry set from the bucket (its earliest due tick), or removed when the bucket is empty.
    static let dueDirectory = #"""
local function dueMember(b) return string.format('%013d', 5000000000000 + b) end
local function setDueHead(base, b)
  local head = redis.call('ZRANGE', base .. ':dueb:' .. b, 0, 0, 'WITHSCORES')
  if head[1] then
    redis.call('ZADD', base .. ':duedir', head[2], dueMember(b))
  else
    redis.call('ZREM', base .. ':duedir', dueMember(b))
  end
end
"""#

    /// `dueMoves(base, items, first, last)`: layout 5's due schedule writes of ARGV-style pairs items[first..last]
    /// (run id, due tick, or "" to take the run out of the schedule). A run with a creation bucket b goes to
    /// `dueb:<b>` (score: its due tick) and leaves layout 4's `due` set if it is still there; a run below every
    /// bucket stays in `due`. Each bucket touched gets its earliest due tick in `duedir`, or leaves it when empty;
    /// its member there is `dueMember(b)`, b + 5·10¹² in 13 digits, so that members of one score sort like bucket
    /// numbers, which is run-id order (negative buckets hold the runs layout 4's migration numbered, all below).
    /// Needs ``bucketLookup`` and ``dueDirectory``.
    static let dueMoves = #"""
local function dueMoves(base, items, first, last)
  local bmap, legacy = base .. ':bmap', base .. ':due'
  local hasLegacy = redis.call('EXISTS', legacy) == 1
  local lrem, ladd, rem, add, order = {}, {}, {}, {}, {}
  for j = first, last - 1, 2 do
    local id, t = items[j], items[j + 1]
    local b = bucketOf(bmap, id)
    if b == nil then
      if t == '' then table.insert(lrem, id) else table.insert(ladd, t); table.insert(ladd, id) end
    else
      if not rem[b] then
        rem[b], add[b] = {}, {}
        table.insert(order, b)
      end
      if t == '' then table.insert(rem[b], id) else table.insert(add[b], t); table.insert(add[b], id) end
      if hasLegacy then table.insert(lrem, id) end
    end
  end
  -- Lua's unpack() fails near 8,000 values: in slices of 4,000 (whole pairs for ZADD).
  local function each(cmd, key, values)
    for k = 1, #values, 4000 do redis.call(cmd, key, unpack(values, k, math.min(#values, k + 3999))) end
  end
  if hasLegacy then each('ZREM', legacy, lrem) end
  each('ZADD', legacy, ladd)
  for _, b in ipairs(order) do
    local key = base .. ':dueb:' .. b
    each('ZREM', key, rem[b])
    each('ZADD', key, add[b])
    setDueHead(base, b)
  end
end
"""#

    static let library = #"""
local ALL_STATUSES = {'pending', 'active', 'waiting', 'paused', 'completed', 'failed', 'cancelled'}

local function bucketNumber(member) return tonumber(string.match(member, ' (%-?%d+)$')) end

-- The index of a filter: given the partition's key base, the statuses asked (a list, empty for all seven) and a
-- planId or "". Each part: its old sorted set (layout 2), its count hash, whether the old set exists, and its
-- number of bucketed runs (a part with none is never read again).
local function openIndex(base, statuses, plan)
  if #statuses == 0 then statuses = ALL_STATUSES end
  local ix = {bmap = base .. ':bmap', parts = {}, counts = {}, sums = {}, hasLegacy = false}
  for _, s in ipairs(statuses) do
    local part = {buckets = {}}
    if plan ~= '' then
      part.legacy, part.counts = base .. ':idx:ps:' .. plan .. ':' .. s, base .. ':ixp:' .. plan .. ':' .. s
    else
      part.legacy, part.counts = base .. ':idx:status:' .. s, base .. ':ixs:' .. s
    end
    part.hasLegacy = redis.call('EXISTS', part.legacy) == 1
    if part.hasLegacy then ix.hasLegacy = true end
    part.all = tonumber(redis.call('HGET', part.counts, 'all')) or 0
    -- A small count hash may be a listpack, where each HMGET field is a scan: read it whole, once.
    if part.all > 0 and redis.call('HLEN', part.counts) <= 512 then
      local flat = redis.call('HGETALL', part.counts)
      part.whole = {}
      for j = 1, #flat, 2 do part.whole[flat[j]] = tonumber(flat[j + 1]) end
    end
    table.insert(ix.parts, part)
  end
  local lo = redis.call('ZRANGE', ix.bmap, 0, 0)[1]
  if lo then
    ix.bmin = bucketNumber(lo)
    ix.bmax = bucketNumber(redis.call('ZRANGE', ix.bmap, -1, -1)[1])
    ix.gmin, ix.gmax = math.floor(ix.bmin / 128), math.floor(ix.bmax / 128)
  end
  return ix
end

-- Count fields of one part, by name (nil: 0): from its whole hash when it was read, else one HMGET.
local function fieldsOf(part, fields)
  if part.whole then
    local v = {}
    for j, f in ipairs(fields) do v[j] = part.whole[f] end
    return v
  end
  return redis.call('HMGET', part.counts, unpack(fields))
end

-- Runs in bucket b of every part (bucketSum) and of part i (partCount); read 32 buckets at a time (aligned), each
-- part's count hash once per 32 buckets. Plain numbers in a table per part, not a table per bucket, and field names
-- by string.format: in Redis's Lua a small table costs ~1.3 µs and tostring ~0.5 µs, which made a block of 32
-- ~100 µs, most of a listRuns query on 1,000,000 runs.
local function loadBuckets(ix, b)
  local k = math.floor(b / 32)
  local lo, hi = math.max(32 * k, ix.bmin), math.min(32 * k + 31, ix.bmax)
  local fields, sums = {}, ix.counts
  for x = lo, hi do
    fields[x - lo + 1] = string.format('%d', x)
    sums[x] = 0
  end
  for _, part in ipairs(ix.parts) do
    if part.all > 0 then
      local v, mine = fieldsOf(part, fields), part.buckets
      for j = 1, #fields do
        local n = tonumber(v[j])
        if n then
          local x = lo + j - 1
          mine[x] = n
          sums[x] = sums[x] + n
        end
      end
    end
  end
end

local function bucketSum(ix, b)
  local c = ix.counts[b]
  if c then return c end
  if b < ix.bmin or b > ix.bmax then return 0 end
  loadBuckets(ix, b)
  return ix.counts[b]
end

local function partCount(ix, i, b)
  if bucketSum(ix, b) == 0 then return 0 end
  return ix.parts[i].buckets[b] or 0
end

-- Runs in group g (buckets 128g … 128g+127) of every part; groups are read 16 at a time (aligned, like the
-- buckets: sumAbove walks them upwards and readDesc downwards, and a block read from g downwards made the upward
-- walk one HMGET per group, 0.9 ms of a time-window query on 1,000,000 runs).
local function groupSum(ix, g)
  local s = ix.sums[g]
  if s then return s end
  local fields, gs = {}, {}
  local k = math.floor(g / 16)
  for x = math.max(16 * k, ix.gmin), math.min(16 * k + 15, ix.gmax) do
    table.insert(fields, string.format('s%d', x))
    table.insert(gs, x)
    ix.sums[x] = 0
  end
  for _, part in ipairs(ix.parts) do
    if part.all > 0 then
      local v = fieldsOf(part, fields)
      for j, x in ipairs(gs) do ix.sums[x] = ix.sums[x] + (tonumber(v[j]) or 0) end
    end
  end
  return ix.sums[g]
end

-- The bucket holding id or bound x: a number, or 'L' below every bucket (the old sorted sets).
local function bucketOf(ix, x)
  if not ix.bmin then return 'L' end
  local m = redis.call('ZRANGE', ix.bmap, '[' .. x .. ' ~', '-', 'BYLEX', 'REV', 'LIMIT', 0, 1)[1]
  if not m then return 'L' end
  return bucketNumber(m)
end

-- Runs in buckets above b ('L': every bucket).
local function sumAbove(ix, b)
  if not ix.bmin then return 0 end
  if b == 'L' then
    local n = 0
    for _, part in ipairs(ix.parts) do n = n + part.all end
    return n
  end
  local n, g = 0, math.floor(b / 128)
  -- Within b's group, the buckets above b, or the group's sum less the buckets up to b: whichever is fewer.
  local lo, hi = math.max(128 * g, ix.bmin), math.min(128 * g + 127, ix.bmax)
  if hi - b <= b - lo + 1 then
    for x = b + 1, hi do n = n + bucketSum(ix, x) end
  else
    n = groupSum(ix, g)
    for x = lo, b do n = n - bucketSum(ix, x) end
  end
  for x = g + 1, ix.gmax do n = n + groupSum(ix, x) end
  return n
end

local function segKey(part, seg)
  if seg == 'L' then return part.legacy end
  return part.counts .. ':' .. seg
end

-- Ids of sorted set k above x (at or above it when inclusive). x is a 13-digit millisecond (below its ids),
-- "<ms>-~" (above them), or a run id or a prefix of one: then a binary search by rank among that ms's ids.
local function keyAbove(k, x, inclusive)
  local ms, rest = string.sub(x, 1, 13), string.sub(x, 14)
  if rest == '' then return redis.call('ZCOUNT', k, ms, '+inf') end
  local r = redis.call('ZCOUNT', k, '(' .. ms, '+inf')
  if rest == '-~' then return r end
  local lo, hi = r, r + redis.call('ZCOUNT', k, ms, ms)
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local id = redis.call('ZRANGE', k, mid, mid, 'REV')[1]
    if id > x or (inclusive and id == x) then lo = mid + 1 else hi = mid end
  end
  return lo
end

-- Matching ids above x (at or above when inclusive); x = '' is below every id.
local function above(ix, x, inclusive)
  if x == '' then x = '0000000000000' end
  local b = bucketOf(ix, x)
  local n = sumAbove(ix, b)
  for i, part in ipairs(ix.parts) do
    local here = true
    if b == 'L' then here = part.hasLegacy else here = partCount(ix, i, b) > 0 end
    if here then n = n + keyAbove(segKey(part, b), x, inclusive) end
  end
  return n
end

-- Every matching id.
local function totalOf(ix)
  local n = sumAbove(ix, 'L')
  for _, part in ipairs(ix.parts) do
    if part.hasLegacy then n = n + redis.call('ZCARD', part.legacy) end
  end
  return n
end

-- Matching ids of millisecond m or later.
local function fromMs(ix, m)
  if m <= 0 then return totalOf(ix) end
  if m > 9999999999999 then return 0 end
  return above(ix, string.format('%013d', m), false)
end

-- The window [min, max] (ZRANGE BYSCORE bounds: "-inf", "+inf", "ms", "(ms") as descending positions
-- [top, bottom), and the total.
local function window(ix, min, max)
  local total = totalOf(ix)
  local top, bottom = 0, total
  if max ~= '+inf' then
    if string.sub(max, 1, 1) == '(' then top = fromMs(ix, tonumber(string.sub(max, 2)))
    else top = fromMs(ix, tonumber(max) + 1) end
  end
  if min ~= '-inf' then
    if string.sub(min, 1, 1) == '(' then bottom = fromMs(ix, tonumber(string.sub(min, 2)) + 1)
    else bottom = fromMs(ix, tonumber(min)) end
  end
  if bottom < top then bottom = top end
  return top, bottom, total
end

-- Up to n ids of segment seg from its descending rank r, highest first: one part's sorted set read by rank, or
-- several merged (a bucket's are read whole: ≤ 128 each; the old sets' first r + n each).
local function readSeg(ix, seg, r, n)
  local keys = {}
  for i, part in ipairs(ix.parts) do
    local here
    if seg == 'L' then here = part.hasLegacy else here = partCount(ix, i, seg) > 0 end
    if here then table.insert(keys, segKey(part, seg)) end
  end
  if #keys == 1 then return redis.call('ZRANGE', keys[1], r, r + n - 1, 'REV') end
  local all = {}
  for _, k in ipairs(keys) do
    local stop = -1
    if seg == 'L' then stop = r + n - 1 end
    for _, id in ipairs(redis.call('ZRANGE', k, 0, stop, 'REV')) do table.insert(all, id) end
  end
  table.sort(all, function(a, b) return a > b end)
  local out = {}
  for i = r + 1, math.min(#all, r + n) do table.insert(out, all[i]) end
  return out
end

-- The segment below seg that holds ids (nil: none).
local function nextSeg(ix, seg)
  if seg == 'L' then return nil end
  local b = seg - 1
  while b >= ix.bmin do
    if b % 128 == 127 and groupSum(ix, math.floor(b / 128)) == 0 then
      b = b - 128
    else
      if bucketSum(ix, b) > 0 then return b end
      b = b - 1
    end
  end
  if ix.hasLegacy then return 'L' end
  return nil
end

-- Up to n matching ids from descending position d, highest first.
local function readDesc(ix, d, n)
  local out = {}
  if n <= 0 or d < 0 then return out end
  local acc, seg, r = 0, nil, 0
  if ix.bmin then
    local g = ix.gmax
    while g >= ix.gmin do
      local s = groupSum(ix, g)
      if acc + s > d then break end
      acc = acc + s
      g = g - 1
    end
    if g >= ix.gmin then
      for b = math.min(128 * g + 127, ix.bmax), 128 * g, -1 do
        local c = bucketSum(ix, b)
        if acc + c > d then
          seg, r = b, d - acc
          break
        end
        acc = acc + c
      end
    end
  end
  if seg == nil then
    if not ix.hasLegacy then return out end
    seg, r = 'L', d - acc
  end
  while seg ~= nil and #out < n do
    local got = readSeg(ix, seg, r, n - #out)
    for _, id in ipairs(got) do table.insert(out, id) end
    if seg == 'L' then break end
    seg, r = nextSeg(ix, seg), 0
  end
  return out
end

-- `count` ids in listRuns order (newest millisecond first, ties by id ascending) from position `offset` of the
-- descending positions [top, bottom). A millisecond's ids are the same positions in either order, turned around:
-- the page is the descending range of its positions with each inner millisecond reversed, and its first and last
-- milliseconds (which may reach past the page) read again at the positions of their ascending ranks: the first
-- from the rank the page starts at (its ids above the page, or above `top`, counted), the last from its lowest.
local function newestFirst(ix, top, bottom, offset, count)
  local out = {}
  local d0 = top + offset
  local d1 = math.min(bottom, d0 + count)
  if d0 >= d1 then return out end
  local items = readDesc(ix, d0, d1 - d0)
  local n = #items
  local i, pos = 1, d0
  while i <= n do
    local ms = string.sub(items[i], 1, 13)
    local j = i
    while j < n and string.sub(items[j + 1], 1, 13) == ms do j = j + 1 end
    local size = j - i + 1
    if i > 1 and j < n then
      for t = j, i, -1 do table.insert(out, items[t]) end
    else
      -- The ids of ms above the page (and in the window) come first in listRuns order: skip as many.
      local r = 0
      if i == 1 then r = pos - math.max(top, above(ix, ms .. '-~', false)) end
      -- (With a ceiling inside ms, top is below ms's highest ids, which are left out: ascending ranks count from
      -- its lowest id, so the rank stands.) Ascending ranks r … r+size-1 of ms are the descending positions
      -- B-r-size … B-r-1, B the matching ids of ms or later: read by position, as any page is, and turned around.
      -- (Walking ms's buckets up from its lowest id took a step per bucket: ~1 ms for the 100,000 runs of one
      -- bulkExecute, which share a millisecond.)
      local got = readDesc(ix, above(ix, ms, false) - r - size, size)
      for t = #got, 1, -1 do table.insert(out, got[t]) end
    end
    pos = pos + size
    i = j + 1
  end
  return out
end
"""#
}

/// Appends a router batch's entries to one partition's inbox, fenced by the router's epoch (SPEC 9: routing stays
/// correct with any number of engine processes).
///
/// An inbox `XADD` refused because the stream already reaches the id does not by itself mean the entry was routed:
/// the script tells "already there" (the same id is in the inbox, or was applied and trimmed: at or below the
/// replied watermark) apart from a gap (neither), which the router must never take for routed.
enum InboxAppendScript {
    static let source = #"""
-- inbox_append.lua: append routed entries to one partition's inbox, in order, fenced by the router epoch.
-- KEYS[1]  <prefix>:{p}:inbox. Derived in its slot: <prefix>:{p}:rfence (the highest router epoch seen),
--          <prefix>:{p}:replied (the owner's replied watermark; the inbox is trimmed only below it).
-- ARGV[1]  the router's epoch: refused (FENCED, nothing written) below the partition's rfence; a higher one is
--          stored, so a router that lost its lease can never write here again
-- ARGV[2…] entries, each: id, field count c, then c strings (field, value, …)
-- Returns one code per entry: 1 appended, 0 already there (same id present, or at or below the replied
--          watermark), -1 a gap (the inbox is past the id, which it never had): the caller must not acknowledge
--          that entry as routed. Any other XADD error (OOM) is returned as the script's error.
local base = string.sub(KEYS[1], 1, -7)
local fence = tonumber(redis.call('GET', base .. ':rfence') or '0')
local epoch = tonumber(ARGV[1])
if not epoch or epoch < fence then return redis.error_reply('FENCED') end
if epoch > fence then redis.call('SET', base .. ':rfence', ARGV[1]) end
-- Stream ids compared exactly (a sequence may exceed a double's precision): by length, then as text.
local function below(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if not am or not bm then return false end
  if #am ~= #bm then return #am < #bm end
  if am ~= bm then return am < bm end
  if #as ~= #bs then return #as < #bs end
  return as <= bs
end
local replied = redis.call('GET', base .. ':replied')
local codes = {}
local i, n = 2, #ARGV
while i <= n do
  local id, c = ARGV[i], tonumber(ARGV[i + 1])
  -- The fields straight from ARGV: a table per entry (filled, then unpacked) was a third of the script's time.
  local ok = redis.pcall('XADD', KEYS[1], id, unpack(ARGV, i + 2, i + 1 + c))
  if type(ok) == 'table' and ok.err then
    -- Only a refusal for the id means "maybe there already"; any other error (OOM under maxmemory) ends the
    -- script with it: the entries before were appended and will be found present when the batch is retried.
    if not string.find(ok.err, 'equal or smaller', 1, true) then return redis.error_reply(ok.err) end
    if #redis.call('XRANGE', KEYS[1], id, id) == 1 or (replied and below(id, replied)) then
      codes[#codes + 1] = 0
    else
      codes[#codes + 1] = -1
    end
  else
    codes[#codes + 1] = 1
  end
  i = i + 2 + c
end
return codes
"""#
}

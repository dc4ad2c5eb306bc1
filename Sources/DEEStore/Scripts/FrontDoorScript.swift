/// Copies a batch of one producer's front-door entries into the one ingress log, exactly once (docs/ACCESS.md).
///
/// A front door is `<prefix>:commands:<name>`: under ACL only the producer `<name>` may `XADD` to it. The router
/// (the holder of the router lease) reads each door from its watermark and calls this script once per door per
/// batch. The script skips every entry at or below the stored watermark, so a crash between a copy and the next
/// read (or two routers racing for a moment around a lease change) copies nothing twice; it writes each copy with
/// `XADD … *`, so the ingress entry id is the command id (run ids, timestamps, order): still one order, one id space.
public enum FrontDoorScript {
    public static let source = #"""
-- front_door.lua: copy one producer's front-door entries into the ingress stream, exactly once.
-- KEYS[1]  <prefix>:commands, the ingress stream.
-- KEYS[2]  <prefix>:doors{<prefix>:commands}, a hash: producer name -> id of the last door entry copied (the
--          watermark). Its hash tag {<prefix>:commands} is the whole name of KEYS[1] (a key without braces
--          hashes whole, one with braces hashes the text between them), so on Redis Cluster both keys are in
--          one slot and this one script writes both atomically. The door streams themselves hash elsewhere:
--          the caller reads and trims them, and passes their entries here.
-- ARGV[1]  the producer's name, written as the copy's `actor` (any `actor` field of the entry is dropped:
--          producers cannot forge who they are).
-- ARGV[2]  the producer's reply space, <prefix>:replies:<name>: . A `replyTo` field not starting with it is
--          dropped (the command is still copied and applied, without a reply).
-- ARGV[3…] entries in door order, each: source id, field count c (even), then c strings (field, value, …).
--          c = 0: the caller refused the entry (it answered it itself); only the watermark moves past it.
-- Returns {copied, replyTo fields dropped, the watermark after the batch ('' when none)}.
-- Ids are compared exactly, by ms then seq as strings of digits (a sequence may exceed a double's precision).
local function above(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if not am then return redis.error_reply('ERR bad door entry id') end
  if not bm then return true end
  if #am ~= #bm then return #am > #bm end
  if am ~= bm then return am > bm end
  if #as ~= #bs then return #as > #bs end
  return as > bs
end
local name, space = ARGV[1], ARGV[2]
local last = redis.call('HGET', KEYS[2], name)
local start = last
local copied, dropped = 0, 0
local i, n = 3, #ARGV
while i <= n do
  local id, c = ARGV[i], tonumber(ARGV[i + 1])
  if not c or c % 2 == 1 or i + 1 + c > n then return redis.error_reply('ERR malformed door batch') end
  local newer = (not last) or above(id, last)
  if type(newer) == 'table' then return newer end
  if newer then
    if c > 0 then
      local f = {}
      for j = i + 2, i + c, 2 do
        local k, v = ARGV[j], ARGV[j + 1]
        if k == 'actor' then
          -- replaced below
        elseif k == 'replyTo' and string.sub(v, 1, #space) ~= space then
          dropped = dropped + 1
        else
          f[#f + 1] = k
          f[#f + 1] = v
        end
      end
      f[#f + 1] = 'actor'
      f[#f + 1] = name
      redis.call('XADD', KEYS[1], '*', unpack(f))
      copied = copied + 1
    end
    last = id
  end
  i = i + 2 + c
end
if last and last ~= start then redis.call('HSET', KEYS[2], name, last) end
return {copied, dropped, last or ''}
"""#
}

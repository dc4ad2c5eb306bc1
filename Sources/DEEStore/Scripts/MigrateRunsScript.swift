import DEECore

/// Converts run hashes of layout 1 (long field names, every field written) to layout 2 (docs/MEMORY.md), in place.
enum MigrateRunsScript {
    /// The Lua table `{short = long, ...}` of ``Run/storedNames``, so that the script and the engine name the same
    /// fields.
    static var namesTable: String {
        "{" + Run.storedNames.map { "{'\($0.short)', '\($0.long)'}" }.joined(separator: ", ") + "}"
    }

    static let source = #"""
-- migrate_runs.lua: rewrite run hashes of layout 1 in layout 2 (docs/MEMORY.md), atomically per call.
-- KEYS[1…n]  <prefix>:{p}:run:<runId>, all of one partition (one slot). A key that is not a hash, or a hash
--            with no layout-1 field, is left as it is, so a call may be repeated (dee migrate resumes so).
-- ARGV: none.
-- Layout 2: short names (NAMES below: {short, long}); a field equal to its default is absent (0, "{}", "[]",
-- the genesis audit head; currentTick when it equals startTick; startedAt when it is the id's first 13 digits);
-- no id field (the key holds it). Where a hash has both names (a layout-2 writer updated it in part) the short
-- one is the newer value. Must agree with Run.storedFields (MigrationTests checks both give the same hash).
-- Returns the number of hashes rewritten.
local NAMES = \#(namesTable)
local ZERO = {n = true, r = true, t0 = true, at = true, a = true}
local EMPTY = {vr = '{}', ct = '{}', df = '[]', h = string.rep('0', 64)}
local converted = 0
for _, key in ipairs(KEYS) do
  if redis.call('TYPE', key)['ok'] == 'hash' then
    local flat = redis.call('HGETALL', key)
    local f = {}
    for i = 1, #flat, 2 do f[flat[i]] = flat[i + 1] end
    local legacy = f['id'] ~= nil
    for _, n in ipairs(NAMES) do if f[n[2]] ~= nil then legacy = true end end
    if legacy then
      local id = string.match(key, ':run:(.*)$') or ''
      local v = {}
      for _, n in ipairs(NAMES) do
        local value = f[n[1]]
        if value == nil then value = f[n[2]] end
        v[n[1]] = value
      end
      local startTick = v['t0'] or '0'
      local out = {}
      for _, n in ipairs(NAMES) do
        local s, value = n[1], v[n[1]]
        local keep = value ~= nil
        if keep and ZERO[s] and tonumber(value) == 0 then keep = false end
        if keep and EMPTY[s] == value then keep = false end
        if keep and s == 't' and tonumber(value) == tonumber(startTick) then keep = false end
        if keep and s == 'sa' and string.match(id, '^%d%d%d%d%d%d%d%d%d%d%d%d%d%-%d+%-%d+%-%d+$')
          and tonumber(value) == tonumber(string.sub(id, 1, 13)) then keep = false end
        if keep then
          table.insert(out, s)
          table.insert(out, value)
        end
      end
      redis.call('DEL', key)
      if #out > 0 then redis.call('HSET', key, unpack(out)) end
      converted = converted + 1
    end
  end
end
return converted
"""#
}

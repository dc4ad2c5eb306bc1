/// Lua shared by the scripts that read the run indexes (query.lua, seek.lua): which sorted sets answer a
/// filter. Interpolated into each script after its header.
enum IndexKeysLua {
    static let function = #"""
-- The indexes that answer a filter, given the partition's key base, the statuses asked (a list, empty for
-- all seven) and a planId or "": idx:ps:<plan>:<status> with a plan, else idx:status:<status>, per status.
local function indexKeys(base, statuses, plan)
  if #statuses == 0 then
    statuses = {'pending', 'active', 'waiting', 'paused', 'completed', 'failed', 'cancelled'}
  end
  local keys = {}
  for _, s in ipairs(statuses) do
    if plan ~= '' then
      table.insert(keys, base .. ':idx:ps:' .. plan .. ':' .. s)
    else
      table.insert(keys, base .. ':idx:status:' .. s)
    end
  end
  return keys
end
"""#
}

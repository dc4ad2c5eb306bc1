/// Moves runs of one partition from layout 4's due schedule (one sorted set) into layout 5's buckets (docs/MEMORY.md),
/// the ids of one ZSCAN page per call (``DueBucketsStep``).
enum MigrateDueScript {
    static let source = #"""
-- migrate_due.lua: move the given runs from the due set into their buckets' due schedule, atomically.
-- KEYS[1]  <prefix>:{p}:duedir. Every other key is <prefix>:{p}:<suffix>, derived from KEYS[1] (same slot): due
--          (layout 4's schedule), bmap (the creation buckets), dueb:<b>.
-- ARGV     run ids (a ZSCAN page of due). Each one still in due (an engine may have moved it since the page was
--          read) and in a creation bucket moves to dueb:<b> with its score; a run below every bucket stays.
-- Returns the number of runs moved.
\#(IndexKeysLua.bucketLookup)
\#(IndexKeysLua.dueDirectory)
\#(IndexKeysLua.dueMoves)
local base = string.sub(KEYS[1], 1, -8)
local items = {}
for _, id in ipairs(ARGV) do
  local score = redis.call('ZSCORE', base .. ':due', id)
  if score and bucketOf(base .. ':bmap', id) then
    table.insert(items, id)
    table.insert(items, score)
  end
end
if #items > 0 then dueMoves(base, items, 1, #items) end
return #items / 2
"""#
}

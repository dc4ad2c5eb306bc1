import Redis

/// The contact index and enrollment of layout 3, folded into one record per contact (docs/MEMORY.md).
///
/// `<prefix>:{p}:cx:<bucket>` is a hash; the field is the contact id, the value the contact's run ids in creation
/// order, separated by spaces, each run that is still open followed by `/<planId>`:
/// `1795465714287-000000-00000-0/welcome 1795465714390-000003-00000-0`. The bucket is the FNV-1a 32 hash of the
/// contact id modulo ``buckets``, so that a bucket holds many contacts in one small (listpack) hash instead of a
/// key per contact (a sorted set per contact and an `enroll` field per open run cost ~228 B per run; this ~56 B).
///
/// Readers: the enrollment check of `execute`/`bulkExecute` is the record's run tagged with the plan; a contact
/// query is the record's ids. Writers: the apply script's `CXADD` (append a token) and `CXDONE` (drop a run's
/// plan tag when it becomes terminal), run retention (drops the token), `dee migrate` step 3 (folds layout 2's
/// `idx:contact:<c>` and `enroll` into records).
public enum ContactRecords {
    /// Buckets per partition. Fixed: the bucket of a contact is part of the key layout.
    public static let buckets = 65_536

    /// FNV-1a 32 of the contact id's UTF-8 bytes, modulo ``buckets``. `ContactRecordsLua.bucket` computes the same.
    public static func bucket(_ contactId: String) -> Int {
        var h: UInt32 = 2_166_136_261
        for b in contactId.utf8 {
            h ^= UInt32(b)
            h = h &* 16_777_619
        }
        return Int(h % UInt32(buckets))
    }

    /// The key suffix (relative to a partition's base) of the contact's record.
    public static func suffix(_ contactId: String) -> String { "cx:\(bucket(contactId))" }

    /// The record's token for a run: its id, tagged with its plan while it is open.
    public static func token(runId: String, planId: String, open: Bool) -> String {
        open ? "\(runId)/\(planId)" : runId
    }

    /// The run ids of a record value, in creation order.
    public static func runIds(_ value: String?) -> [String] {
        guard let value else { return [] }
        return value.split(separator: " ").map { token in
            String(token.firstIndex(of: "/").map { token[..<$0] } ?? token[...])
        }
    }

    /// The contact's open run of `planId` in a record value (its enrollment), if any.
    public static func openRun(_ value: String?, planId: String) -> String? {
        guard let value else { return nil }
        for token in value.split(separator: " ") {
            guard let slash = token.firstIndex(of: "/"), token[token.index(after: slash)...] == planId else { continue }
            return String(token[..<slash])
        }
        return nil
    }
}

/// Lua shared by the scripts that find a contact's record themselves (run retention, the layout-3 migration).
enum ContactRecordsLua {
    /// `contactBucket(contactId)`: ``ContactRecords/bucket(_:)`` in Lua (Redis's `bit` library; products kept
    /// below 2^53 so doubles stay exact: `h * 16777619 mod 2^32 = (h mod 2^8) * 2^24 + h * 403`).
    static let bucket = #"""
local function contactBucket(c)
  local h = 2166136261
  for i = 1, #c do
    h = bit.bxor(h, string.byte(c, i))
    if h < 0 then h = h + 4294967296 end
    h = ((h % 256) * 16777216 + h * 403) % 4294967296
  end
  return h % \#(ContactRecords.buckets)
end
"""#

    /// `cxRemove(v, id)`: the record value `v` without run `id`'s token (nil when nothing is left); tokens are
    /// matched whole. (The apply script's `CXDONE` drops a tag the same way, inline.)
    static let edit = #"""
local function cxFind(v, id)
  local s = ' ' .. v .. ' '
  local a = string.find(s, ' ' .. id .. ' ', 1, true)
  if a then return a, a + #id + 1 end
  a = string.find(s, ' ' .. id .. '/', 1, true)
  if not a then return nil end
  local b = string.find(s, ' ', a + 1, true)
  return a, b
end
local function cxRemove(v, id)
  local a, b = cxFind(v, id)
  if not a then return v end
  local s = ' ' .. v .. ' '
  local out = string.sub(s, 2, a) .. string.sub(s, b + 1, -2)
  out = (string.gsub(out, '^ +', ''))
  out = (string.gsub(out, ' +$', ''))
  if out == '' then return nil end
  return out
end
"""#
}

/// The reads an `execute` makes before it enrolls a contact: its suppression and its open run of the plan, from
/// the contact's record, and while a deployment is not yet in layout 3 (`legacy`), also from layout 2's
/// `enroll` hash (runs enrolled before the migration folded them). Pipelined by the caller.
public struct EnrollmentCheck: Sendable {
    public let legacy: Bool

    public init(legacy: Bool) { self.legacy = legacy }

    /// How many commands ``commands(_:planId:contactId:)`` returns.
    public var width: Int { legacy ? 3 : 2 }

    public func commands(_ keys: PartitionKeys, planId: String, contactId: String) -> [[String]] {
        [["HEXISTS", keys.suppressed, contactId], ["HGET", keys.contactRecord(contactId), contactId]]
            + (legacy ? [["HGET", keys.enroll, "\(planId):\(contactId)"]] : [])
    }

    /// What the replies of ``commands(_:planId:contactId:)`` (``width`` of them, from `start`) say.
    public func read(_ replies: [RESPValue], at start: Int, planId: String) -> (suppressed: Bool, openRun: String?) {
        let open = ContactRecords.openRun(replies[start + 1].string, planId: planId)
            ?? (legacy ? replies[start + 2].string : nil)
        return (replies[start].int == 1, open)
    }
}

/// The reads of a contact's run ids: its record, and while not yet in layout 3, layout 2's sorted set.
public struct ContactRunsRead: Sendable {
    public let legacy: Bool

    public init(legacy: Bool) { self.legacy = legacy }

    public var width: Int { legacy ? 2 : 1 }

    /// At most `limit + 1` ids are read from a layout-2 sorted set (enough to know there are more than `limit`).
    public func commands(_ keys: PartitionKeys, contactId: String, limit: Int) -> [[String]] {
        [["HGET", keys.contactRecord(contactId), contactId]]
            + (legacy ? [["ZRANGE", "\(keys.base):\(PartitionKeys.contactSuffix(contactId))", "0", String(limit)]] : [])
    }

    /// The contact's run ids, creation order first from the record, then any only in the old sorted set.
    public func read(_ replies: [RESPValue], at start: Int) -> [String] {
        var ids = ContactRecords.runIds(replies[start].string)
        if legacy {
            let known = Set(ids)
            ids += (replies[start + 1].array ?? []).compactMap(\.string).filter { !known.contains($0) }
        }
        return ids
    }
}

import Redis

/// One consumer group on a partition's actions stream, as `XINFO GROUPS` tells it.
public struct ExecutorGroup: Sendable, Equatable {
    public var name: String
    /// Entries delivered to the group's consumers and not acknowledged yet (its pending entries list).
    public var pending: Int
    /// Entries in the stream not yet delivered to the group; nil when Redis cannot tell (Redis < 7, or a group
    /// whose read counter is unknown, such as one created at an arbitrary id).
    public var lag: Int?
    public var consumers: Int
    public var lastDeliveredId: String

    public init(name: String, pending: Int, lag: Int?, consumers: Int, lastDeliveredId: String) {
        self.name = name
        self.pending = pending
        self.lag = lag
        self.consumers = consumers
        self.lastDeliveredId = lastDeliveredId
    }
}

/// What one trim call did to a partition's actions stream.
public struct ActionsTrim: Sendable, Equatable {
    public enum Mode: String, Sendable {
        /// Another process holds the partition's lease: it trims this stream, not us.
        case notOwner = "notowner"
        /// There is no actions stream yet.
        case empty
        /// No executor group reads the stream: trimmed to about `MAXLEN` (nobody promised to read it).
        case maxlen
        /// Trimmed below the floor: nothing any group has not acknowledged is removed.
        case minid
    }

    public var mode: Mode
    /// Entries this call removed.
    public var removed: Int
    /// Entries held after it.
    public var length: Int
    /// The `MINID` used (`minid` only): every entry below it was acknowledged by every group.
    public var floor: String?
    /// The group whose oldest unacknowledged entry (or last delivered one) sets the floor.
    public var holdingGroup: String?
    public var groups: [ExecutorGroup]
}

/// A partition's actions stream and its executor groups. The apply script appends action requests without a
/// `MAXLEN` (`XADDKEEP`); this trims them: with no consumer group, to about `streamMaxLen` as before; with
/// groups, only below what every group has acknowledged (`XTRIM MINID`), so a request is never dropped unread.
public struct ActionsStore: Sendable {
    public let keys: PartitionKeys

    public init(keys: PartitionKeys) { self.keys = keys }

    /// Entries one trim call removes at most (`XTRIM … LIMIT`): it keeps every call to a few milliseconds of Redis
    /// (SPEC 9). A caller with more to trim calls again.
    public static let trimLimit = 10_000

    /// Trims the actions stream once (at most `limit` entries) and reports its executor groups. With `holder`, only
    /// while that instance holds the partition's lease (the partition's owner trims it); nil trims regardless.
    public func trim(holder: String?, maxLen: Int, limit: Int = trimLimit, _ redis: any RedisCommands) throws -> ActionsTrim {
        let reply = try redis.evalScript(
            Self.trimScript, keys: [keys.actions, keys.lease], arguments: [holder ?? "", String(maxLen), String(limit)])
        if case .error(let message) = reply { throw RedisError(.server, message) }
        let items = reply.array ?? []
        guard items.count >= 5, let mode = items[0].string.flatMap(ActionsTrim.Mode.init(rawValue:)) else {
            throw RedisError(.server, "actions trim: unexpected reply \(reply)")
        }
        var groups: [ExecutorGroup] = []
        var i = 5
        while i + 4 < items.count {
            let lag = items[i + 2].int ?? -1
            groups.append(
                ExecutorGroup(
                    name: items[i].string ?? "", pending: items[i + 1].int ?? 0, lag: lag < 0 ? nil : lag,
                    consumers: items[i + 3].int ?? 0, lastDeliveredId: items[i + 4].string ?? ""))
            i += 5
        }
        let floor = items[3].string.flatMap { $0.isEmpty ? nil : $0 }
        let holding = items[4].string.flatMap { $0.isEmpty ? nil : $0 }
        return ActionsTrim(
            mode: mode, removed: items[1].int ?? 0, length: items[2].int ?? 0, floor: floor, holdingGroup: holding,
            groups: groups)
    }

    /// The commands that read the stream's length and its groups (for `stats`, in a pipeline with others).
    public var readCommands: [[String]] { [["XLEN", keys.actions], ["XINFO", "GROUPS", keys.actions]] }

    /// `XINFO GROUPS` parsed; an error reply (no such stream yet) is no group.
    public static func groups(_ reply: RESPValue) -> [ExecutorGroup] {
        if case .error = reply { return [] }
        return (reply.array ?? []).map { item in
            var fields: [String: RESPValue] = [:]
            let flat = item.array ?? []
            var i = 0
            while i + 1 < flat.count {
                if let k = flat[i].string { fields[k] = flat[i + 1] }
                i += 2
            }
            return ExecutorGroup(
                name: fields["name"]?.string ?? "", pending: fields["pending"]?.int ?? 0,
                lag: fields["lag"].flatMap { $0.isNull ? nil : $0.int }, consumers: fields["consumers"]?.int ?? 0,
                lastDeliveredId: fields["last-delivered-id"]?.string ?? "")
        }
    }

    static let trimScript = #"""
        -- actions_trim.lua: trim a partition's actions stream, never below what an executor group still needs.
        -- KEYS[1] <prefix>:{p}:actions   KEYS[2] <prefix>:{p}:lease (same slot)
        -- ARGV[1] the lease holder this caller is ("" : trim whoever holds the partition)
        -- ARGV[2] approximate MAXLEN when no consumer group reads the stream
        -- ARGV[3] entries removed at most (XTRIM LIMIT)
        -- With groups, the floor is the least, over groups, of the group's oldest pending id or, with none
        -- pending, the id right after its last-delivered-id; XTRIM MINID ~ floor removes only entries below it,
        -- all of them acknowledged by every group. Read and trim are one script: a group created meanwhile
        -- cannot lose entries.
        -- Returns {mode, removed, length, floor, holding group, then per group: name, pending, lag (-1: unknown),
        -- consumers, last-delivered-id}; mode is notowner, empty, maxlen or minid.
        if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[1] then
          return {'notowner', 0, 0, '', ''}
        end
        if redis.call('EXISTS', KEYS[1]) == 0 then
          return {'empty', 0, 0, '', ''}
        end
        -- Decimal strings (stream ids reach 2^64-1, past Lua's exact numbers).
        local function inc(s)
          local i = #s
          while i > 0 and string.sub(s, i, i) == '9' do i = i - 1 end
          if i == 0 then return '1' .. string.rep('0', #s) end
          return string.sub(s, 1, i - 1) .. string.char(string.byte(s, i) + 1) .. string.rep('0', #s - i)
        end
        local function lessNum(a, b)
          if #a ~= #b then return #a < #b end
          return a < b
        end
        local function split(id)
          local ms, seq = string.match(id, '^(%d+)-(%d+)$')
          return ms, seq
        end
        local function less(a, b)
          local am, as = split(a)
          local bm, bs = split(b)
          if am ~= bm then return lessNum(am, bm) end
          return lessNum(as, bs)
        end
        local function after(id)
          local ms, seq = split(id)
          if seq == '18446744073709551615' then return inc(ms) .. '-0' end
          return ms .. '-' .. inc(seq)
        end
        local out = {'', 0, 0, '', ''}
        local floor, holding
        for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
          local f = {}
          for j = 1, #g, 2 do f[g[j]] = g[j + 1] end
          local name = f['name']
          local summary = redis.call('XPENDING', KEYS[1], name)
          local mine
          if tonumber(summary[1]) > 0 and summary[2] then mine = summary[2] else mine = after(f['last-delivered-id']) end
          if not floor or less(mine, floor) then floor, holding = mine, name end
          local lag = f['lag']
          if type(lag) ~= 'number' then lag = -1 end
          table.insert(out, name)
          table.insert(out, tonumber(f['pending']) or 0)
          table.insert(out, lag)
          table.insert(out, tonumber(f['consumers']) or 0)
          table.insert(out, f['last-delivered-id'])
        end
        local removed
        if floor then
          removed = redis.call('XTRIM', KEYS[1], 'MINID', '~', floor, 'LIMIT', ARGV[3])
          out[1], out[4], out[5] = 'minid', floor, holding
        else
          removed = redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', ARGV[2], 'LIMIT', ARGV[3])
          out[1] = 'maxlen'
        end
        out[2] = removed
        out[3] = redis.call('XLEN', KEYS[1])
        return out
        """#
}

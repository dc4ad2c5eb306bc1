import Redis

/// A run that run retention passed over, and why (the scripts name it; nothing of it was written).
public struct RetentionSkip: Sendable, Equatable {
    public enum Reason: Sendable, Equatable {
        /// Its run hash is gone (an operator deleted it, or it was listed twice).
        case gone
        /// Its run key holds another type.
        case wrongType
        /// Its hash says it is not terminal.
        case open
        /// Its `completedAt` is not a whole number of milliseconds.
        case completedAt
        /// Its hash lacks `planId` or `contactId`, so its indexes cannot be named.
        case corrupt
        /// One of its index keys (the suffix) holds another type.
        case wrongTypeKey(String)
        /// A reason this version does not know.
        case other(String)

        public init(_ text: String) {
            switch text {
            case "gone": self = .gone
            case "wrongtype": self = .wrongType
            case "open": self = .open
            case "completedAt": self = .completedAt
            case "corrupt": self = .corrupt
            default:
                if text.hasPrefix("wrongtype:") {
                    self = .wrongTypeKey(String(text.dropFirst("wrongtype:".count)))
                } else {
                    self = .other(text)
                }
            }
        }
    }

    public var runId: String
    public var reason: Reason

    public init(runId: String, reason: Reason) {
        self.runId = runId
        self.reason = reason
    }
}

/// What one removal batch did (``RunRetentionStore/remove(epoch:retentionMilliseconds:now:limit:_:)``).
public struct RetentionBatch: Sendable, Equatable {
    /// Runs removed.
    public var removed: Int
    /// Candidates examined (removed, skipped, or moved to their later due time).
    public var examined: Int
    /// The batch used its whole budget: more may be due now.
    public var more: Bool
    /// When the next candidate is due (epoch ms, Redis's clock), if one is known.
    public var nextDue: Int64?
    /// Redis's clock when the batch ran (or the `now` given), epoch ms.
    public var now: Int64
    /// Finished-list entries whose run hash was already gone (removed through the backfill set, or deleted by an
    /// operator): nothing to do, not a skip.
    public var gone: Int
    public var skipped: [RetentionSkip]

    public init(
        removed: Int, examined: Int, more: Bool, nextDue: Int64?, now: Int64, gone: Int = 0, skipped: [RetentionSkip]
    ) {
        self.removed = removed
        self.examined = examined
        self.more = more
        self.nextDue = nextDue
        self.now = now
        self.gone = gone
        self.skipped = skipped
    }
}

/// What one backfill step did (``RunRetentionStore/backfill(epoch:limit:now:_:)``).
public struct BackfillStep: Sendable, Equatable {
    /// The walk is finished: removals may start.
    public var done: Bool
    /// Index entries read.
    public var read: Int
    /// Runs put in the backfill set.
    public var queued: Int
    public var skipped: [RetentionSkip]

    public init(done: Bool, read: Int, queued: Int, skipped: [RetentionSkip]) {
        self.done = done
        self.read = read
        self.queued = queued
        self.skipped = skipped
    }
}

/// What a retention script call answered, apart from its work.
public enum RetentionRefusal: Error, Sendable, Equatable {
    /// The caller's epoch is not the partition's: another process owns it now. Nothing was written.
    case fenced
    /// The partition's backfill is not finished: nothing was removed.
    case backfillPending
    /// A partition-wide key (the suffix) holds another type: nothing was written.
    case wrongType(String)
}

/// Run retention's Redis side for one partition: the removal and backfill scripts (Scripts/RunRetentionScript.swift,
/// Scripts/RunRetentionBackfillScript.swift), each fenced by the partition's epoch like the apply script, and the
/// counters `stats` reads.
public struct RunRetentionStore: Sendable {
    public let keys: PartitionKeys

    public init(keys: PartitionKeys) { self.keys = keys }

    /// Candidates one call examines at most by default. A removal costs Redis ~21 µs per run (`INFO commandstats`
    /// on this machine under load; Scripts/RunRetentionScript.swift), so 100 keep a call near the apply script's
    /// ~2 ms (SPEC 9).
    public static let defaultBatch = 100

    /// Removes the finished runs whose `completedAt` is at least `retentionMilliseconds` before `now` (nil: Redis's
    /// clock), examining at most `limit` candidates. Throws ``RetentionRefusal`` when refused.
    public func remove(
        epoch: String, retentionMilliseconds: Int, now: Int64? = nil, limit: Int = defaultBatch,
        _ redis: any RedisCommands
    ) throws -> RetentionBatch {
        let reply = try redis.evalScript(
            RunRetentionScript.body, keys: [keys.epoch],
            arguments: [epoch, String(retentionMilliseconds), now.map { String($0) } ?? "", String(max(1, limit))])
        try Self.refusal(reply)
        let items = reply.array ?? []
        guard items.count >= 6, let removed = items[0].int, let examined = items[1].int, let now = items[4].int else {
            throw RedisError(.unexpectedReply, "run retention script answered \(reply)")
        }
        return RetentionBatch(
            removed: removed, examined: examined, more: items[2].int == 1, nextDue: items[3].int.map { Int64($0) },
            now: Int64(now), gone: items[5].int ?? 0, skipped: Self.skips(items.dropFirst(6)))
    }

    /// One step of the one-time backfill (at most `limit` index entries read). `now` (nil: Redis's clock) is the
    /// bound when the finished list is empty.
    public func backfill(epoch: String, limit: Int = defaultBatch, now: Int64? = nil, _ redis: any RedisCommands) throws
        -> BackfillStep
    {
        let reply = try redis.evalScript(
            RunRetentionBackfillScript.body, keys: [keys.epoch],
            arguments: [epoch, String(max(1, limit)), now.map { String($0) } ?? ""])
        try Self.refusal(reply)
        let items = reply.array ?? []
        guard items.count >= 3, let done = items[0].int, let read = items[1].int, let queued = items[2].int else {
            throw RedisError(.unexpectedReply, "run retention backfill script answered \(reply)")
        }
        return BackfillStep(done: done == 1, read: read, queued: queued, skipped: Self.skips(items.dropFirst(3)))
    }

    /// Whether the partition's backfill is finished.
    public func backfilled(_ redis: any RedisCommands) throws -> Bool {
        try redis.call(["HGET", keys.retention, "bf"]).string == "done"
    }

    /// The read of the removed-runs counter, for `stats` (in a pipeline with others); see ``removedTotal(_:)``.
    public var removedCommand: [String] { ["HGET", keys.retention, "removed"] }

    /// The counter from its reply: an error (another type) or a value that is not a number counts 0.
    public static func removedTotal(_ reply: RESPValue) -> Int {
        if case .error = reply { return 0 }
        return reply.int ?? 0
    }

    static func refusal(_ reply: RESPValue) throws {
        guard case .error(let e) = reply else { return }
        // Redis may prefix a script's error with "ERR ".
        if e.contains("FENCED") { throw RetentionRefusal.fenced }
        if e.contains("BACKFILL") { throw RetentionRefusal.backfillPending }
        let words = e.split(separator: " ")
        if let i = words.firstIndex(of: "BADTYPE"), i + 1 < words.endIndex {
            throw RetentionRefusal.wrongType(String(words[i + 1]))
        }
        throw RedisError(.server, "run retention script: \(e)")
    }

    static func skips(_ items: ArraySlice<RESPValue>) -> [RetentionSkip] {
        var out: [RetentionSkip] = []
        var i = items.startIndex
        while i + 1 < items.endIndex {
            out.append(RetentionSkip(runId: items[i].string ?? "", reason: .init(items[i + 1].string ?? "")))
            i += 2
        }
        return out
    }
}

import DEECore
import DEEStore
import Logging
import Redis
import Synchronization

/// Commands split over several partitions (bulk commands, ticks) are answered once every share is in.
extension PartitionOwner {
    /// A command split over every partition is answered once all shares are in: each partition, after writing
    /// its share, counts itself in `<prefix>:gather:<entryId>`; the one that brings the count to the number of
    /// parts merges the shares and replies. A partition that applies the entry again after a crash counts past
    /// it and replies again (replies are at-least-once).
    func gather(
        _ id: EntryID, parts: Int, targets: [Int]?, address: ReplyAddress, _ redis: any RedisCommands
    ) throws -> [String]? {
        let prefixKeys = Keys(prefix: config.prefix)
        let counter = prefixKeys.gather(id.description)
        let counted = try redis.pipeline([["INCR", counter], ["EXPIRE", counter, "3600"]])
        // Refused under OOM: throw, so the entry is read again and counted then (its reply is not lost).
        try Failure.throwIfTransient(counted)
        guard (counted[0].int ?? 0) >= parts else { return nil }
        // The partitions the router sent the command to (a bulkExecute skips partitions without contacts).
        let sharing = targets ?? Array(0..<parts)
        let replies = try redis.pipeline(sharing.map { ["GET", prefixKeys.partition($0).share(id.description)] })
        var outcomes: [Outcome] = []
        for r in replies {
            guard let text = r.string, let json = JSONValue.parse(text), let o = Outcome(json: json) else { return nil }
            outcomes.append(o)
        }
        return address.command(Self.merge(outcomes), maxLen: config.replyMaxLen)
    }

    /// Merges partition shares: counts add up, lists concatenate (capped at 1000), the tick is the lowest.
    static func merge(_ outcomes: [Outcome]) -> Outcome {
        var merged: [String: JSONValue] = [:]
        for outcome in outcomes {
            switch outcome.result {
            case .failure: return outcome
            case .success(let v):
                for (k, value) in v.object ?? [:] {
                    switch (merged[k], value) {
                    case (nil, _): merged[k] = value
                    case (.int(let a)?, .int(let b)) where k == "tick": merged[k] = .int(min(a, b))
                    case (.int(let a)?, .int(let b)): merged[k] = .int(a + b)
                    case (.array(let a)?, .array(let b)): merged[k] = .array(a + b)
                    default: break
                    }
                }
            }
        }
        // Lists come back by index in the whole command, capped at 1000 (each partition kept its first 1000).
        for key in ["errorDetails", "skippedContacts"] {
            guard let list = merged[key]?.array else { continue }
            let sorted = list.enumerated().sorted { a, b in
                let (x, y) = (a.element.object?["index"]?.int ?? Int.max, b.element.object?["index"]?.int ?? Int.max)
                return x != y ? x < y : a.offset < b.offset
            }
            merged[key] = .array(sorted.prefix(1000).map(\.element))
        }
        return .ok(.object(merged))
    }
}

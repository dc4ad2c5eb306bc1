import DEECore
import Redis

/// The status and plan+status indexes of layout 4 (docs/MEMORY.md, Scripts/IndexKeysLua.swift): per index a count
/// hash and listpack buckets of ≤ 128 runs; runs written before layout 4 stay in the layout-2 sorted sets until
/// `dee migrate` moves them, and every reader adds both.
extension PartitionKeys {
    /// `bmap`: zset, score 0, member `<first run id> <b>` per bucket b (the bucket of an id is found BYLEX).
    public static let bucketMapSuffix = "bmap"
    /// `nruns`: the partition's creation counter (run n is in bucket floor(n / 128)).
    public static let runCounterSuffix = "nruns"
    /// `nlegacy`: runs of layout 2 the migration has numbered (run m, highest id first, is in bucket -1 - m/128).
    public static let legacyCounterSuffix = "nlegacy"

    public var bucketMap: String { "\(base):\(Self.bucketMapSuffix)" }
    /// The count hash of status s's index (`<b>`, `s<g>`, `all`); its buckets are `<this>:<b>`.
    public func statusCounts(_ s: RunStatus) -> String { "\(base):ixs:\(s.rawValue)" }
    /// The count hash of the index of plan `planId` in status s; its buckets are `<this>:<b>`.
    public func planStatusCounts(_ planId: String, _ s: RunStatus) -> String { "\(base):ixp:\(planId):\(s.rawValue)" }

    /// The commands whose integer replies add up to the number of runs in status s: the layout-2 set's ZCARD and
    /// the count hash's `all` (see ``runCount(_:)``).
    public func runCountCommands(_ s: RunStatus) -> [[String]] {
        [["ZCARD", status(s)], ["HGET", statusCounts(s), "all"]]
    }

    /// The number of runs from the replies to ``runCountCommands(_:)``.
    public static func runCount(_ replies: ArraySlice<RESPValue>) -> Int {
        replies.reduce(0) { $0 + ($1.int ?? 0) }
    }
}

import DEECore

/// The Redis key layout (SPEC 8). Everything of partition p starts with `<prefix>:{p}:`, so one partition is
/// one Redis Cluster slot and one script can touch all of it. The plan registry lives under `{plans}`.
public struct Keys: Sendable, Equatable {
    public let prefix: String

    public init(prefix: String) { self.prefix = prefix }

    // Global keys.
    public var commands: String { "\(prefix):commands" }
    public var rejected: String { "\(prefix):rejected" }
    public var deadletter: String { "\(prefix):deadletter" }
    /// Deployment settings (partition count), checked at start-up.
    public var meta: String { "\(prefix):meta" }
    /// Counts the partitions that finished their share of a command split over all of them.
    public func gather(_ entry: String) -> String { "\(prefix):gather:\(entry)" }
    /// The wall-clock ticker's lease (one process advances the clock).
    public var tickerLease: String { "\(prefix):ticker" }

    // The plan registry.
    public var plansTag: String { "\(prefix):{plans}" }
    public func plan(_ id: String) -> String { "\(plansTag):plan:\(id)" }
    public var planIds: String { "\(plansTag):ids" }
    public func planRequest(_ key: String) -> String { "\(plansTag):req:\(key)" }

    /// Everything of one partition.
    public func partition(_ p: Int) -> PartitionKeys { PartitionKeys(base: "\(prefix):{\(p)}") }
}

/// The keys of one partition that Swift reads or names. The scripts derive the index keys (`idx:status:`,
/// `idx:ps:`, `idx:contact:`) from `base` themselves (see Scripts/ and the README's key layout).
public struct PartitionKeys: Sendable, Equatable {
    public let base: String

    public var epoch: String { "\(base):epoch" }
    public var lease: String { "\(base):lease" }
    public var inbox: String { "\(base):inbox" }
    public var applied: String { "\(base):applied" }
    public var replied: String { "\(base):replied" }
    public var clock: String { "\(base):clock" }
    public var events: String { "\(base):events" }
    public var actions: String { "\(base):actions" }
    public var due: String { "\(base):due" }
    public var enroll: String { "\(base):enroll" }
    public var suppressed: String { "\(base):suppressed" }
    /// Results of commands without requestId, by entry id, until replied.
    public var results: String { "\(base):results" }
    public func run(_ id: String) -> String { "\(base):run:\(id)" }
    public func audit(_ runId: String) -> String { "\(base):audit:\(runId)" }
    public func status(_ s: RunStatus) -> String { "\(base):idx:status:\(s.rawValue)" }
    public func planCopy(_ id: String, _ version: Int) -> String { "\(base):\(Self.planCopySuffix(id, version))" }
    public static func planCopySuffix(_ id: String, _ version: Int) -> String { "plan:\(id):\(version)" }
    /// Key suffixes (relative to base) used inside scripts.
    public static func requestSuffix(_ key: String) -> String { "req:\(key)" }
    public func request(_ key: String) -> String { "\(base):\(Self.requestSuffix(key))" }
    public static func progressSuffix(_ entry: String) -> String { "progress:\(entry)" }
    public func progress(_ entry: String) -> String { "\(base):\(Self.progressSuffix(entry))" }
    public static func shareSuffix(_ entry: String) -> String { "share:\(entry)" }
    public func share(_ entry: String) -> String { "\(base):\(Self.shareSuffix(entry))" }
}

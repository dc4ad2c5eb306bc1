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
    /// The live engine processes (``Membership``): they share the partitions evenly.
    public var members: String { "\(prefix):members" }
    /// The wall-clock ticker's lease (one process advances the clock).
    public var tickerLease: String { "\(prefix):ticker" }
    /// The router lease: one process routes the ingress stream at a time (SPEC 9); its epoch fences inbox writes.
    public var routerLease: String { "\(prefix):router" }
    public var routerEpoch: String { "\(prefix):router:epoch" }
    /// The claim of a requestId across partitions (SPEC 5): the first command's fingerprint, for the dedupe window.
    /// The requestId is the hash tag, so claims spread over Redis Cluster slots.
    public func requestClaim(_ requestId: String) -> String { "\(prefix):rid:{\(requestId)}" }
    /// Attempts at ingress entries routed on their own (entry id → count), kept across restarts.
    public var routerAttempts: String { "\(prefix):router:attempts" }

    // The plan registry.
    public var plansTag: String { "\(prefix):{plans}" }
    public func plan(_ id: String) -> String { "\(plansTag):plan:\(id)" }
    public var planIds: String { "\(plansTag):ids" }
    public func planRequest(_ key: String) -> String { "\(plansTag):req:\(key)" }

    /// Everything of one partition.
    public func partition(_ p: Int) -> PartitionKeys { PartitionKeys(base: "\(prefix):{\(p)}") }
}

/// The keys of one partition. The query and seek scripts derive the index keys they read (`idx:status:`,
/// `idx:ps:`, `idx:contact:`) from `base` themselves (see Scripts/ and the README's key layout).
public struct PartitionKeys: Sendable, Equatable {
    public let base: String

    public var epoch: String { "\(base):epoch" }
    public var lease: String { "\(base):lease" }
    public var inbox: String { "\(base):inbox" }
    /// The highest router epoch that wrote this inbox: a router with a lower one is refused.
    public var routerFence: String { "\(base):rfence" }
    /// Attempts at inbox entries applied on their own (entry id → count), kept across restarts.
    public var attempts: String { "\(base):attempts" }
    public var applied: String { "\(base):applied" }
    public var replied: String { "\(base):replied" }
    public var clock: String { "\(base):\(Self.clockSuffix)" }
    public var events: String { "\(base):\(Self.eventsSuffix)" }
    public var actions: String { "\(base):\(Self.actionsSuffix)" }
    /// Layout 4's due schedule (one sorted set, run id → due tick): since layout 5 it holds only runs below every
    /// bucket (created before layout 4 and not migrated) and what `dee migrate` has not moved yet.
    public var due: String { "\(base):\(Self.dueSuffix)" }
    /// Layout 5's due schedule: the runs of creation bucket b (the buckets of ``bucketMap``) in `dueb:<b>`, by due
    /// tick, and every bucket with a due run in `duedir`, scored by its earliest due tick (docs/MEMORY.md).
    public func dueBucket(_ b: Int) -> String { "\(base):\(Self.dueBucketSuffix(b))" }
    public var dueDirectory: String { "\(base):\(Self.dueDirectorySuffix)" }
    /// Layout 2's enrollment hash (`plan:contact` → open run id), read until layout 3's records replace it.
    public var enroll: String { "\(base):\(Self.enrollSuffix)" }
    public var suppressed: String { "\(base):\(Self.suppressedSuffix)" }
    /// Results of commands without requestId, by entry id, until replied.
    public var results: String { "\(base):\(Self.resultsSuffix)" }
    /// Run ids in the order their runs finished (completed, failed, cancelled): the apply script appends each run
    /// that becomes terminal, and run retention removes from the head (Sources/DEEService/Retention/RunRetention).
    public var finished: String { "\(base):\(Self.finishedSuffix)" }
    /// Runs that finished before the `finished` list existed, by `completedAt` ms (run retention's one-time backfill).
    public var finishedBackfill: String { "\(base):\(Self.finishedBackfillSuffix)" }
    /// Run retention's state: `removed` (runs removed, all time), `skipped`, and the backfill's cursor.
    public var retention: String { "\(base):\(Self.retentionSuffix)" }
    public func run(_ id: String) -> String { "\(base):\(Self.runSuffix(id))" }
    /// The record holding the contact's run ids and enrollments (layout 3; ``ContactRecords``).
    public func contactRecord(_ contactId: String) -> String { "\(base):\(ContactRecords.suffix(contactId))" }
    public func audit(_ runId: String) -> String { "\(base):\(Self.auditSuffix(runId))" }
    public func status(_ s: RunStatus) -> String { "\(base):\(Self.statusSuffix(s))" }
    public func planCopy(_ id: String, _ version: Int) -> String { "\(base):\(Self.planCopySuffix(id, version))" }
    public static func planCopySuffix(_ id: String, _ version: Int) -> String { "plan:\(id):\(version)" }
    /// Key suffixes (relative to base): the apply script's write list names keys by these, and the keys above
    /// are built from them, so the layout is written down once.
    public static let clockSuffix = "clock"
    public static let eventsSuffix = "events"
    public static let actionsSuffix = "actions"
    public static let dueSuffix = "due"
    public static let dueDirectorySuffix = "duedir"
    public static func dueBucketSuffix(_ b: Int) -> String { "dueb:\(b)" }
    public static let enrollSuffix = "enroll"
    public static let suppressedSuffix = "suppressed"
    public static let resultsSuffix = "results"
    public static let finishedSuffix = "finished"
    public static let finishedBackfillSuffix = "finished:backfill"
    public static let retentionSuffix = "retention"
    public static func runSuffix(_ id: String) -> String { "run:\(id)" }
    public static func auditSuffix(_ runId: String) -> String { "audit:\(runId)" }
    public static func statusSuffix(_ s: RunStatus) -> String { "idx:status:\(s.rawValue)" }
    public static func planStatusSuffix(_ planId: String, _ s: RunStatus) -> String { "idx:ps:\(planId):\(s.rawValue)" }
    /// Layout 2's per-contact index (read while a deployment is not yet migrated to layout 3's records).
    public static func contactSuffix(_ contactId: String) -> String { "idx:contact:\(contactId)" }
    public static func requestSuffix(_ key: String) -> String { "req:\(key)" }
    public func request(_ key: String) -> String { "\(base):\(Self.requestSuffix(key))" }
    public static func progressSuffix(_ entry: String) -> String { "progress:\(entry)" }
    public func progress(_ entry: String) -> String { "\(base):\(Self.progressSuffix(entry))" }
    public static func shareSuffix(_ entry: String) -> String { "share:\(entry)" }
    public func share(_ entry: String) -> String { "\(base):\(Self.shareSuffix(entry))" }
}

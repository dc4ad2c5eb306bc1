import DEECore
import DEEStore

/// Settings of one engine process. Defaults are SPEC 5 and 9's.
public struct EngineConfiguration: Sendable {
    public var prefix = "dee"
    /// Partition count P, fixed per deployment (stored in Redis and checked at start-up).
    public var partitions = 1
    /// Consumer name in the `dee-engine` group; stable across restarts on one host by default.
    public var consumer: String
    /// Names this process instance in partition leases: the consumer name plus a random token.
    public var instance: String
    public var group = "dee-engine"
    /// Entries read per `XREADGROUP`/`XREAD` (the router's batches, and a partition's inbox while it applies one
    /// entry at a time).
    public var readCount = 256
    /// Inbox entries a partition owner reads and applies together in one round (consecutive commands on single runs
    /// are one group: one read pipeline, apply scripts of 64, two in flight). The round's fixed waits (its last
    /// scripts, the replies, the next read) are paid once per batch: 1,024 ran ~10 % more executes per second
    /// than 256 (docs/PERFORMANCE.md).
    public var inboxBatch = 1024
    /// How long a read blocks, ms. Must stay below the connection's socket timeout.
    public var blockMilliseconds = 500
    /// How long an explicit requestId's result is kept (and a repeat answered from it), seconds.
    public var dedupeWindowSeconds = 86_400
    /// How long the result of a registerPlan without requestId is kept, seconds. (Results of partition commands
    /// without requestId are kept in `<prefix>:{p}:results` only until they are replied.)
    public var implicitResultSeconds = 3_600
    /// Approximate MAXLEN of each partition's events stream, and of its actions stream while no executor consumer
    /// group reads it (with groups, actions are trimmed only below what every group acknowledged).
    public var streamMaxLen = 1_000_000
    /// How often the owner of a partition trims its actions stream and checks its executor groups, seconds.
    public var actionsTrimEverySeconds: Double = 5
    /// How long a run's audit entries are kept once the run is terminal, seconds (nil: for the run's life).
    public var auditRetentionSeconds: Int?
    /// How long a finished run (completed, failed, cancelled) is kept after its `completedAt`, ms, before run
    /// retention removes it with its indexes, enrollment and audit (nil: for ever). `dee serve --run-retention`
    /// takes 1 s to 3650 d; tests use milliseconds.
    public var runRetentionMilliseconds: Int?
    /// Candidates one run retention script examines at most: ~21 µs of Redis per removed run, so 100 keep a script
    /// near 2 ms (SPEC 9: a few ms at most).
    public var runRetentionBatch = 100
    /// Run retention batches per partition per round at most; a round starts every `runRetentionEverySeconds`. So
    /// at most 5,000 runs per second per partition are removed (about 10 % of a Redis core while there is that much to do), far above what a
    /// deployment finishes, and a backlog (retention turned on late) drains at that pace.
    public var runRetentionBatchesPerRound = 50
    public var runRetentionEverySeconds: Double = 1
    public var replyMaxLen = 10_000
    public var rejectedMaxLen = 100_000
    /// How long a partition or router lease lasts without renewal; holders renew it every third of it.
    public var leaseMilliseconds = 10_000
    public var claimIdleMilliseconds = 30_000
    /// Replicas every acknowledged or replied write must reach first (`WAIT`; 0: none, a Redis without replicas),
    /// and how long to wait for them before trying again (`dee serve --wait-replicas`, `--wait-timeout`).
    public var replicaWait = ReplicaWait.none
    /// Attempts at one entry, each made on its own and counted in Redis, after which it is a poison message (SPEC 9).
    public var maxDeliveries = 5
    /// HMAC key for audit checksums, kept outside Redis; nil: plain SHA-256.
    public var auditKey: [UInt8]?
    public var limits = Limits()
    /// Runs changed by one apply script at most (a tick batch, a bulk cancel batch, a slice of a bulkExecute
    /// batch). About 16-20 µs of Redis time per run: 100 keeps every script near 2 ms (SPEC 9).
    public var maxRunsPerScript = 100
    /// A listRuns over several partitions from this offset on seeks its page by run-id bounds (about 20 round
    /// trips) instead of merging every partition's first offset+limit ids.
    public var seekOffset = 1000
    /// Runs stepped per tick batch script.
    public var tickBatchSize = 100
    /// Tick batches read from the due schedule at once: while Redis runs one batch's script, the owner reads and
    /// computes the next (bounded, so a tick still finishes batch by batch).
    public var tickWindowBatches = 8
    /// Runs per bulk cancel batch script.
    public var cancelBatchSize = 100
    /// Advance the clock by one tick every this many seconds (nil: only `tick` commands move it).
    public var tickEverySeconds: Double?
    /// Producers with a front door `<prefix>:commands:<name>` (docs/ACCESS.md): the router lease holder copies each
    /// door's entries into the ingress stream with `actor` set to the name. Names are ids (no colons or braces).
    public var producers: [String] = []
    /// Where this process records its metrics and which leases it holds (`dee serve --metrics-port`); off by default.
    public var metrics: EngineMetrics = .disabled
    /// How often the metrics sampler reads the deployment-wide gauges (runs by status, ingress lag) from Redis.
    public var metricsSampleEverySeconds: Double = 5

    public init(consumer: String) {
        self.consumer = consumer
        self.instance = consumer + "/" + String(UInt64.random(in: 0..<UInt64.max), radix: 36)
    }

    public var signer: AuditSigner { AuditSigner(key: auditKey) }
}

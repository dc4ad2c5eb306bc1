import CoreMetrics
import DEECore
import Synchronization

/// Every metric the engine reports, by name, and the functions that record them: the one place to look for what a
/// metric means, so that each call site in the router or a partition owner is one line.
///
/// Recorded through swift-metrics into the factory given at `init` (in `dee serve --metrics-port`, the Prometheus
/// registry behind `GET /metrics`). ``disabled`` records nothing and costs one branch per call. The object also
/// remembers which leases this process holds, for `GET /healthz`.
///
/// Counters count at least once: an entry whose write failed is attempted again and counted again; a command
/// split over several partitions (ticks, bulk commands, listRuns without contactId on one partition) counts once
/// per partition that applied it. Labels are bounded: a `type` that is not a command the engine serves is `other`.
public final class EngineMetrics: Sendable {
    /// The metric names (Prometheus conventions: `_total` for counters, base units in the name).
    public enum Name {
        /// Counter `{type}`: commands answered ok (by the router, or applied in a partition).
        public static let commandsApplied = "dee_commands_applied_total"
        /// Counter `{type, code}`: commands answered with an error, by SPEC 5 error code (rejections included).
        public static let commandsFailed = "dee_commands_failed_total"
        /// Histogram `{type}`, seconds: from the start of applying an inbox entry (or the group of executes it was
        /// applied with) to its commit.
        public static let applyDuration = "dee_command_apply_duration_seconds"
        /// Histogram, seconds: one `tick` command in one partition (all of its ticks and batches).
        public static let tickDuration = "dee_tick_duration_seconds"
        /// Histogram: runs stepped by one `tick` command in one partition.
        public static let tickSteps = "dee_tick_steps"
        /// Counter `{source}` (`ingress`, `partition`): entries given up on as poison and written to the dead letters.
        public static let deadletters = "dee_deadletters_total"
        /// Gauge `{partition}`: 1 while this process holds the partition's lease, else 0.
        public static let partitionOwned = "dee_partition_owned"
        /// Gauge: 1 while this process holds the router lease, else 0.
        public static let routerLease = "dee_router_lease"
        /// Gauge (sampled): ingress entries not yet delivered to the `dee-engine` group (XINFO GROUPS `lag`).
        public static let ingressLag = "dee_ingress_lag"
        /// Gauge (sampled): ingress entries delivered but not yet acknowledged (XINFO GROUPS `pending`).
        public static let ingressPending = "dee_ingress_pending"
        /// Gauge `{status}` (sampled): runs by status over every partition (ZCARD of the status indexes).
        public static let runs = "dee_runs"
        /// Gauge (sampled): entries in the dead-letter stream (XLEN).
        public static let deadletterEntries = "dee_deadletter_entries"
        /// Gauge (sampled): 1 when the last sample reached Redis, else 0.
        public static let redisUp = "dee_redis_up"
    }

    /// Histogram buckets for the Prometheus backend, per metric name: engine work is mostly sub-millisecond, which
    /// the backend's default buckets (from 5 ms) would put all in one.
    public static let durationBuckets: [String: [Duration]] = [
        Name.applyDuration: [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
            .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
        ],
        Name.tickDuration: [
            .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(100),
            .milliseconds(500), .seconds(1), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
        ],
    ]
    /// Value-histogram buckets per metric name.
    public static let valueBuckets: [String: [Double]] = [
        Name.tickSteps: [0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000]
    ]

    /// Where a dead letter came from.
    public enum DeadletterSource: String, Sendable {
        case ingress
        case partition
    }

    /// What the sampler read from Redis (deployment-wide values, the same from every process).
    public struct Sample: Sendable, Equatable {
        public var ingressLag: Int?
        public var ingressPending: Int
        public var runs: [RunStatus: Int]
        public var deadletters: Int

        public init(ingressLag: Int?, ingressPending: Int, runs: [RunStatus: Int], deadletters: Int) {
            self.ingressLag = ingressLag
            self.ingressPending = ingressPending
            self.runs = runs
            self.deadletters = deadletters
        }
    }

    /// Records nothing.
    public static let disabled = EngineMetrics(factory: nil)

    private let factory: (any MetricsFactory)?
    private let state = Mutex(State())
    /// Command types as labels; anything else is `other`.
    private static let served = Set(RequestDecoder.commandNames)

    private struct State {
        var counters: [String: Counter] = [:]
        var timers: [String: Timer] = [:]
        var gauges: [String: Gauge] = [:]
        var owned: Set<Int> = []
        /// Partitions whose gauge was set (to set each only when it changes).
        var reported: [Int: Bool] = [:]
        var router: Bool?
    }

    /// Records into `factory` (a test's `TestMetrics`, or the Prometheus factory).
    public convenience init(factory: any MetricsFactory) {
        self.init(factory: Optional(factory))
    }

    private init(factory: (any MetricsFactory)?) {
        self.factory = factory
    }

    /// Whether anything is recorded.
    public var isEnabled: Bool { factory != nil }

    // MARK: - Commands

    /// A command answered with `outcome`. With `start` (a partition applying it), its apply duration too, and for
    /// a tick its duration and the runs it stepped.
    public func command(_ type: String, _ outcome: Outcome, since start: ContinuousClock.Instant? = nil) {
        guard factory != nil else { return }
        let type = Self.served.contains(type) ? type : "other"
        // `failure`, not `result`: a success given printed (a run) would be parsed back for nothing.
        if let error = outcome.failure {
            counter(Name.commandsFailed, [("type", type), ("code", error.code.rawValue)]).increment()
        } else {
            counter(Name.commandsApplied, [("type", type)]).increment()
            if type == "tick", let start, case .success(let value) = outcome.result {
                let elapsed = ContinuousClock.now - start
                timer(Name.tickDuration, []).recordNanoseconds(Self.nanoseconds(elapsed))
                if let stepped = value.object?["stepped"]?.int { recorder(Name.tickSteps).record(stepped) }
            }
        }
        if let start {
            timer(Name.applyDuration, [("type", type)]).recordNanoseconds(Self.nanoseconds(ContinuousClock.now - start))
        }
    }

    /// An entry given up on as poison.
    public func deadLetter(_ source: DeadletterSource) {
        guard factory != nil else { return }
        counter(Name.deadletters, [("source", source.rawValue)]).increment()
    }

    // MARK: - Leases

    /// Whether this process holds partition `p`'s lease now; cheap to call every round (the gauge is set only when
    /// it changes).
    public func partitionLease(_ p: Int, held: Bool) {
        guard factory != nil else { return }
        let changed = state.withLock { s -> Bool in
            if held { s.owned.insert(p) } else { s.owned.remove(p) }
            guard s.reported[p] != held else { return false }
            s.reported[p] = held
            return true
        }
        if changed { gauge(Name.partitionOwned, [("partition", String(p))]).record(held ? 1 : 0) }
    }

    /// Whether this process holds the router lease now; cheap to call every round.
    public func routerLease(held: Bool) {
        guard factory != nil else { return }
        let changed = state.withLock { s -> Bool in
            guard s.router != held else { return false }
            s.router = held
            return true
        }
        if changed { gauge(Name.routerLease, []).record(held ? 1 : 0) }
    }

    /// The leases this process holds now (for `/healthz`).
    public var ownership: (router: Bool, partitions: [Int]) {
        state.withLock { ($0.router ?? false, $0.owned.sorted()) }
    }

    // MARK: - Sampled gauges

    /// What the sampler read; nil when Redis could not be reached (only `dee_redis_up` changes then).
    public func sampled(_ sample: Sample?) {
        guard factory != nil else { return }
        gauge(Name.redisUp, []).record(sample == nil ? 0 : 1)
        guard let sample else { return }
        if let lag = sample.ingressLag { gauge(Name.ingressLag, []).record(lag) }
        gauge(Name.ingressPending, []).record(sample.ingressPending)
        for status in RunStatus.allCases {
            gauge(Name.runs, [("status", status.rawValue)]).record(sample.runs[status] ?? 0)
        }
        gauge(Name.deadletterEntries, []).record(sample.deadletters)
    }

    // MARK: - Handlers, made once per label set

    private static func key(_ name: String, _ dimensions: [(String, String)]) -> String {
        dimensions.reduce(name) { $0 + "\u{1}" + $1.0 + "=" + $1.1 }
    }

    private static func nanoseconds(_ d: Duration) -> Int64 {
        let (s, atto) = d.components
        return s * 1_000_000_000 + atto / 1_000_000_000
    }

    private func counter(_ name: String, _ dimensions: [(String, String)]) -> Counter {
        let key = Self.key(name, dimensions)
        if let c = state.withLock({ $0.counters[key] }) { return c }
        let c = Counter(label: name, dimensions: dimensions, factory: factory ?? NOOPMetricsHandler.instance)
        return state.withLock { s in
            if let existing = s.counters[key] { return existing }
            s.counters[key] = c
            return c
        }
    }

    private func timer(_ name: String, _ dimensions: [(String, String)]) -> Timer {
        let key = Self.key(name, dimensions)
        if let t = state.withLock({ $0.timers[key] }) { return t }
        let t = Timer(label: name, dimensions: dimensions, factory: factory ?? NOOPMetricsHandler.instance)
        return state.withLock { s in
            if let existing = s.timers[key] { return existing }
            s.timers[key] = t
            return t
        }
    }

    private func gauge(_ name: String, _ dimensions: [(String, String)]) -> Gauge {
        let key = Self.key(name, dimensions)
        if let g = state.withLock({ $0.gauges[key] }) { return g }
        let g = Gauge(label: name, dimensions: dimensions, factory: factory ?? NOOPMetricsHandler.instance)
        return state.withLock { s in
            if let existing = s.gauges[key] { return existing }
            s.gauges[key] = g
            return g
        }
    }

    /// Histograms of values (`dee_tick_steps`); made each time (rare: once per tick command).
    private func recorder(_ name: String) -> Recorder {
        Recorder(label: name, dimensions: [], aggregate: true, factory: factory ?? NOOPMetricsHandler.instance)
    }
}

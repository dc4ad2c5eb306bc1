import DEECore
import DEEStore
import Logging
import Redis
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The one process that applies a partition's inbox, in order (SPEC 9). It holds the partition's lease; every
/// write carries its fencing epoch, which the apply script checks, so a process that lost the lease cannot
/// write. On taking a partition it first replies again what its predecessor applied but had not replied, and
/// resumes an unfinished batched command, then goes on.
final class PartitionOwner: Sendable {
    let partition: Int
    let config: EngineConfiguration
    let keys: PartitionKeys
    let store: PartitionStore
    let inbox: InboxStore
    let plans: PlanStore
    let reads: PartitionReads
    let decoder: RequestDecoder
    let logger: Logger
    let signer: AuditSigner
    /// The partitions this process holds and how many processes share them (rebalancing).
    let share: ProcessPartitions
    /// What the owner knows of its partition; every job of the owner (one file each in this folder) reads it.
    let state = Mutex(State())
    /// Set when the process shuts down gracefully: a round applying one entry at a time (after taking the partition,
    /// with a backlog) stops after the entry in hand, replied, rather than at the end of its batch.
    private let stopRequest = Atomic<Bool>(false)

    func requestStop() { stopRequest.store(true, ordering: .relaxed) }
    var stopRequested: Bool { stopRequest.load(ordering: .relaxed) }

    struct State {
        /// The lease, the replied watermark, and whether the next batch goes one entry at a time.
        var machine = OwnerStateMachine()
        var applied: EntryID?
        var clock = 0
        var copiedPlans = Set<String>()
        var renewed = ContinuousClock.now
        /// Whether the deployment may still hold layout 2's contact indexes and enrollment hash (its `layout` was
        /// below 3 when last read: on taking the partition, then at every renewal until it is not).
        var legacyContacts = true
        /// Since when this process has seen the lease free while leaving it to others (rebalancing).
        var freeSince: ContinuousClock.Instant?
        /// When the deployment's layout was last read (``readLayout``).
        var layoutRead: ContinuousClock.Instant?
    }

    /// The enrollment reads of an execute in this partition's current layout.
    var enrollmentCheck: EnrollmentCheck { EnrollmentCheck(legacy: state.withLock { $0.legacyContacts }) }
    /// The reads of a contact's run ids in this partition's current layout.
    var contactRunsRead: ContactRunsRead { ContactRunsRead(legacy: state.withLock { $0.legacyContacts }) }

    init(partition: Int, config: EngineConfiguration, plans: PlanStore, share: ProcessPartitions, logger: Logger) {
        self.partition = partition
        self.share = share
        self.config = config
        let k = Keys(prefix: config.prefix)
        self.keys = k.partition(partition)
        self.store = PartitionStore(partition: partition, keys: k, streamMaxLen: config.streamMaxLen)
        self.inbox = InboxStore(keys: k.partition(partition))
        self.plans = plans
        self.reads = PartitionReads(config: config, plans: plans)
        self.decoder = RequestDecoder(prefix: config.prefix, limits: config.limits)
        var l = logger
        l[metadataKey: "partition"] = "\(partition)"
        self.logger = l
        self.signer = config.signer
    }

    func address(_ id: EntryID, _ e: InboxEntry) -> ReplyAddress {
        ReplyAddress(
            replyTo: e.replyTo, requestId: e.requestId ?? id.description, commandId: id.description, type: e.type,
            actor: e.actor)
    }

    /// Applies one inbox entry (or replies again what was applied) and returns its reply command.
    func handle(_ id: EntryID, _ e: InboxEntry, _ redis: any RedisCommands) throws -> [String]? {
        let started = ContinuousClock.now
        let address = address(id, e)
        let rid = e.requestId ?? ""
        let fingerprint = e.fingerprint
        let envelope: Envelope
        do {
            envelope = try decoder.decode([("type", e.type), ("args", e.args)])
        } catch {
            return address.command(.error(error), maxLen: config.replyMaxLen)
        }
        let request = envelope.request

        let parts = e.parts
        if !request.isReadOnly {
            let applied = state.withLock { $0.applied }
            let replayed = applied.map { id <= $0 } ?? false
            // A command without requestId can have a stored result only once applied (its key is its entry id).
            let stored = try storedResult(id, requestId: rid, replayed: replayed, redis)
            if replayed {
                // Applied before a crash or a lost lease: reply what was stored.
                if parts > 1 { return try gather(id, parts: parts, targets: e.targets, address: address, redis) }
                guard let stored else { return nil }
                return address.command(stored.outcome, maxLen: config.replyMaxLen)
            }
            if let stored {
                // The same requestId again, in a later entry.
                let outcome = stored.fingerprint == fingerprint ? stored.outcome : .error(Router.requestIdReused(rid))
                var set = ChangeSet(entry: id)
                if parts > 1 { set.share = (PartitionKeys.shareSuffix(id.description), outcome.json.canonical, 3600) }
                try commit(set, redis)
                if parts > 1 { return try gather(id, parts: parts, targets: e.targets, address: address, redis) }
                return address.command(outcome, maxLen: config.replyMaxLen)
            }
        }

        let clock = state.withLock { $0.clock }
        let context = ChangeContext(
            commandId: id, requestId: rid.isEmpty ? id.description : rid, actor: e.actor,
            clock: clock)
        var changes = ChangeSet(entry: id)
        let outcome: Outcome
        do {
            outcome = try execute(request, entry: e, context: context, changes: &changes, redis)
        } catch let e as DEEError {
            outcome = .error(e)
            changes = ChangeSet(entry: id)
        }
        if !request.isReadOnly {
            if outcome.storable {
                let record = outcome.record(fingerprint: fingerprint)
                if rid.isEmpty {
                    changes.results = [(id, record)]
                } else {
                    changes.dedupe = (PartitionKeys.requestSuffix(rid), record, config.dedupeWindowSeconds)
                }
            }
            if parts > 1 { changes.share = (PartitionKeys.shareSuffix(id.description), outcome.json.canonical, 3600) }
            try commit(changes, redis)
        }
        config.metrics.command(e.type, outcome, since: started)
        if parts > 1, !request.isReadOnly {
            return try gather(id, parts: parts, targets: e.targets, address: address, redis)
        }
        return address.command(outcome, maxLen: config.replyMaxLen)
    }

    /// The stored result of an entry: by its requestId (kept for the dedupe window), or, for a command without
    /// one that was applied before (a crash between applying and replying), from the results stream.
    func storedResult(_ id: EntryID, requestId rid: String, replayed: Bool, _ redis: any RedisCommands) throws
        -> (fingerprint: String, outcome: Outcome)?
    {
        if !rid.isEmpty {
            return try redis.call(["GET", keys.request(rid)]).string.flatMap(Outcome.parseRecord)
        }
        guard replayed else { return nil }
        let entries = try redis.call(["XRANGE", keys.results, id.description, id.description]).streamEntries
        return entries.first?.1["r"].flatMap(Outcome.parseRecord)
    }

    /// Reads the reply of an apply script sent with `sendOnly`; a fence refusal throws.
    func receiveApplyResult(_ redis: any RedisCommands) throws -> ApplyResult {
        let result = try PartitionStore.result(redis.receive(1)[0])
        if result == .fenced { throw Fenced() }
        return result
    }

    /// Writes a change set; on success remembers the watermark and clock.
    func commit(_ set: ChangeSet, _ redis: any RedisCommands) throws {
        _ = try commit(set, then: nil, redis)
    }

    /// Writes a change set and, in the same round trip, sends `then` (a read for the next step); returns its reply.
    func commit(_ set: ChangeSet, then: [String]?, _ redis: any RedisCommands) throws -> RESPValue {
        try renewDuringLongCommands(redis)
        guard let epoch = state.withLock({ $0.machine.epoch }) else { throw Fenced() }
        var set = set
        set.auditRetention = config.auditRetentionSeconds
        let (result, next) = try store.apply(set, epoch: epoch, then: then, redis)
        switch result {
        case .ok, .alreadyApplied:
            state.withLock { s in
                if let e = set.entry { s.applied = e }
                if let c = set.clock { s.clock = c }
                if let p = set.planCopy { s.copiedPlans.insert(p.key) }
            }
        case .fenced:
            logger.warning("fenced: another process owns the partition now")
            state.withLock { $0.machine.lost() }
            throw Fenced()
        case .gap:
            // Only a set with `follows` can be refused so; a single set has none.
            throw RedisError(.unexpectedReply, "apply script answered GAP to a set that follows nothing")
        }
        return next
    }
}

/// Waits on the owner's own queue thread (never the cooperative pool) while another process holds the lease.
func sleepMilliseconds(_ ms: Int) {
    usleep(UInt32(ms) * 1000)
}

import DEECore
import DEEStore
import Logging
import Redis

/// The ingress step (SPEC 9): reads `<prefix>:commands` in the consumer group, validates each entry, answers
/// plan-registry commands, and copies every other command to the inbox of the partition it touches, with the
/// ingress entry id as the inbox entry id (so routing again is harmless); then acknowledges it.
final class Router: Sendable {
    let config: EngineConfiguration
    let keys: Keys
    let plans: PlanStore
    let decoder: RequestDecoder
    let logger: Logger
    let reads: PartitionReads

    init(config: EngineConfiguration, plans: PlanStore, logger: Logger) {
        self.config = config
        self.keys = Keys(prefix: config.prefix)
        self.plans = plans
        self.decoder = RequestDecoder(prefix: config.prefix, limits: config.limits)
        self.logger = logger
        self.reads = PartitionReads(config: config, plans: plans)
    }

    /// The router's Redis reads and writes.
    var ingress: IngressStore {
        IngressStore(keys: keys, group: config.group, consumer: config.consumer, partitions: config.partitions)
    }

    /// What routing a batch came to.
    enum BatchResult: Equatable {
        /// Every entry is routed (or dead-lettered) and acknowledged.
        case done
        /// An inbox refused the router's epoch: another process routes now; nothing was acknowledged.
        case fenced
    }

    /// Routes a batch of ingress entries: validates each, answers those the router answers, appends the others to
    /// the inboxes they touch (one fenced script per partition, entries in id order), then acknowledges them. A
    /// failure throws before anything is acknowledged; the caller routes the pending entries again.
    func routeBatch(_ batch: [StreamEntry], epoch: Int, _ redis: RedisConnection) throws -> BatchResult {
        var out = Batch()
        var routed: [String] = []
        for entry in batch {
            routed.append(entry.id)
            // Deleted from the stream while pending: nothing to route.
            if entry.fields.isEmpty { continue }
            try route(entry, &out, redis)
        }
        let parts = out.inbox.keys.sorted()
        let calls = parts.map { ingress.appendCall(partition: $0, epoch: epoch, entries: out.inbox[$0] ?? []) }
        let (codes, _) = try ingress.append(calls, then: out.commands, redis)
        if codes.contains(where: { $0 == nil }) { return .fenced }
        var perEntry: [String: [(partition: Int, code: AppendCode)]] = [:]
        for (k, p) in parts.enumerated() {
            for (e, code) in zip(out.inbox[p] ?? [], codes[k] ?? []) { perEntry[e.id, default: []].append((p, code)) }
        }
        for entry in batch {
            if case .gap(let partitions) = RoutedEntry.decide(perEntry[entry.id] ?? []) {
                logger.error(
                    "an inbox is past an entry it never had; the entry goes to the dead letters",
                    metadata: ["stream.entry_id": "\(entry.id)", "partitions": "\(partitions)"])
                deadletter(entry, reason: "inbox gap in partitions \(partitions)", redis)
            }
        }
        try redis.pipeline([ingress.forgetAttemptsCommand(routed)]).forEach { _ = $0 }
        try ingress.ack(routed, redis)
        return .done
    }

    /// Routes entries one at a time, each attempt counted in Redis first: an entry attempted more than
    /// `maxDeliveries` times is poison and goes to the dead letters (answered `internal`). A transient failure
    /// takes its attempt back and throws; any other failure leaves it counted and throws.
    func routeSingly(_ batch: [StreamEntry], epoch: Int, _ redis: RedisConnection) throws -> BatchResult {
        for entry in batch {
            let attempts = try ingress.countAttempt(entry.id, redis)
            if AttemptDecision.decide(attempts: attempts, maxAttempts: config.maxDeliveries) == .poison {
                poison(entry, reason: "failed \(attempts - 1) attempts", redis)
                try redis.pipeline([ingress.forgetAttemptsCommand([entry.id])]).forEach { _ = $0 }
                try ingress.ack([entry.id], redis)
                continue
            }
            do {
                if try routeBatch([entry], epoch: epoch, redis) == .fenced { return .fenced }
            } catch {
                if Failure.classify(error) == .transient { try? ingress.uncountAttempt(entry.id, redis) }
                throw error
            }
        }
        return .done
    }

    /// Gives up on an entry: dead letter, an `internal` reply when it names a valid replyTo, and a log line.
    private func poison(_ entry: StreamEntry, reason: String, _ redis: RedisConnection) {
        logger.error("giving up on an ingress entry", metadata: ["stream.entry_id": "\(entry.id)", "reason": "\(reason)"])
        deadletter(entry, reason: reason, redis)
        let header = decoder.header(entry.fields)
        let address = ReplyAddress(
            replyTo: header.replyTo.flatMap { decoder.validReplyTo($0) ? $0 : nil },
            requestId: header.requestId ?? entry.id, commandId: entry.id, type: header.type ?? "")
        let error = DEEError(.internal, "the engine could not route this command (\(reason)); see \(keys.deadletter)")
        if let r = address.command(.error(error), maxLen: config.replyMaxLen) { _ = try? redis.send(r) }
    }

    private func deadletter(_ entry: StreamEntry, reason: String, _ redis: RedisConnection) {
        _ = try? redis.send(Deadletters(keys: keys, maxLen: config.rejectedMaxLen).add(
            commandId: entry.id, source: "ingress", error: reason, fields: entry.fields))
    }

    /// What a batch writes at its end, in one pipeline; and the latest plan versions it has looked up.
    struct Batch {
        /// Inbox copies per partition, in entry order.
        var inbox: [Int: [(id: String, fields: [String])]] = [:]
        /// Replies and rejections.
        var commands: [[String]] = []
        var latest: [String: Int] = [:]
    }

    /// Validates, answers or forwards one ingress entry, adding its writes to the batch.
    func route(_ entry: StreamEntry, _ out: inout Batch, _ redis: RedisConnection) throws {
        let header = decoder.header(entry.fields)
        let address = ReplyAddress(
            replyTo: header.replyTo.flatMap { decoder.validReplyTo($0) ? $0 : nil },
            requestId: header.requestId ?? entry.id, commandId: entry.id, type: header.type ?? "")
        let envelope: Envelope
        do {
            envelope = try decoder.decode(entry.fields)
        } catch {
            reject(entry.id, header: header, error: error, address: address, &out)
            return
        }
        // Run ids and timestamps come from the entry id (SPEC 1); a producer's explicit id past 13 digits of
        // milliseconds (the year 2286) would make run ids that no longer sort or name their partition.
        guard let parsed = EntryID(entry.id), parsed.ms < 10_000_000_000_000 else {
            let error = DEEError.badRequest("id", "the entry id \(entry.id) is past 13 digits of milliseconds; let Redis choose it (XADD … *)")
            reject(entry.id, header: header, error: error, address: address, &out)
            return
        }
        let requestKey = envelope.requestId ?? "@" + entry.id
        switch envelope.request {
        case .registerPlan(let plan):
            if let rid = envelope.requestId {
                // A requestId another command already used (its record lives in a partition) is not reusable.
                let found = try redis.pipeline((0..<config.partitions).map { ["EXISTS", keys.partition($0).request(rid)] })
                if found.contains(where: { $0.int == 1 }) {
                    send(.error(Self.requestIdReused(rid)), address, &out)
                    return
                }
            }
            let r = try plans.register(
                plan, requestKey: requestKey, fingerprint: envelope.fingerprint,
                ttl: envelope.requestId == nil ? config.implicitResultSeconds : config.dedupeWindowSeconds, redis)
            out.latest[plan.id] = nil
            if let stored = r.stored {
                reply(repeatOf: stored, fingerprint: envelope.fingerprint, address: address, &out)
            } else {
                var result: [String: JSONValue] = [
                    "planId": .string(plan.id), "version": .int(r.version), "created": .bool(r.created),
                ]
                if !plan.warnings.isEmpty { result["warnings"] = .array(plan.warnings.map(JSONValue.string)) }
                send(.ok(.object(result)), address, &out)
            }
            return
        case .getPlan(let planId, let version):
            send(try reads.getPlan(planId, version: version, redis), address, &out)
            return
        case .listPlans:
            send(.ok(.array(try plans.list(redis))), address, &out)
            return
        case .listRuns(let filter, let limit, let offset) where config.partitions > 1 && filter.contactId == nil:
            send(try reads.listRuns(filter, limit: limit, offset: offset, redis), address, &out)
            return
        case .stats where config.partitions > 1:
            send(try reads.stats(redis), address, &out)
            return
        default:
            break
        }

        if let rid = envelope.requestId, !envelope.request.isReadOnly,
            try redis.call(["EXISTS", keys.planRequest(rid)]).int == 1
        {
            // Used before by a registerPlan.
            send(.error(Self.requestIdReused(rid)), address, &out)
            return
        }

        // Resolve the plan version now, in ingress order, so the partition applies a fixed version. A plan
        // that cannot be resolved travels on as `fail`, so the partition answers and stores it like any result.
        var planVersion: Int?
        var failure: DEEError?
        switch envelope.request {
        case .execute(let ref, _, _, _, _), .bulkExecute(let ref, _, _, _):
            switch ref {
            case .inline(let plan):
                planVersion = try plans.registerImplicitly(plan, redis)
            case .id(let id, let version):
                if let version {
                    if try plans.load(id, version: version, redis) != nil {
                        planVersion = version
                    } else {
                        failure = DEEError(.notFound, "plan \(id) has no version \(version)", field: "planVersion")
                    }
                } else if let latest = try out.latest[id] ?? plans.latestVersion(id, redis) {
                    out.latest[id] = latest
                    planVersion = latest
                } else {
                    failure = DEEError(.notFound, "no plan \(id); register it first", field: "planId")
                }
            }
        default:
            break
        }

        let targets = partitions(of: envelope.request)
        var fields = [
            "type", envelope.type, "rid", envelope.requestId ?? "", "fp", envelope.fingerprint,
            "replyTo", address.replyTo ?? "", "actor", envelope.actor ?? "",
            "args", JSONValue.object(envelope.arguments).canonical, "parts", String(targets.count),
        ]
        if let planVersion { fields += ["planVersion", String(planVersion)] }
        if let failure { fields += ["fail", failure.json.canonical] }
        for p in targets { out.inbox[p, default: []].append((entry.id, fields)) }
    }

    /// The partitions a command touches.
    func partitions(of request: Request) -> [Int] {
        let all = Array(0..<config.partitions)
        guard config.partitions > 1 else { return [0] }
        switch request {
        case .execute(_, _, let contactId, _, _), .suppress(let contactId, _), .unsuppress(let contactId):
            return [Partitioning.partition(ofContact: contactId, count: config.partitions)]
        case .getRun(let r), .pauseRun(let r, _), .resumeRun(let r), .cancelRun(let r, _), .getAudit(let r, _),
            .verifyAudit(let r), .replay(let r), .actionResult(let r, _, _, _, _):
            return [RunID.partition(of: r).map { min($0, config.partitions - 1) } ?? 0]
        case .signal(.run(let r), _, _, _):
            return [RunID.partition(of: r).map { min($0, config.partitions - 1) } ?? 0]
        case .signal(.contact(let c), _, _, _):
            return [Partitioning.partition(ofContact: c, count: config.partitions)]
        case .listRuns(let f, _, _):
            return f.contactId.map { [Partitioning.partition(ofContact: $0, count: config.partitions)] } ?? all
        case .bulkCancel(let f, _):
            return f.contactId.map { [Partitioning.partition(ofContact: $0, count: config.partitions)] } ?? all
        default:
            return all
        }
    }

    private func reject(
        _ id: String, header: EntryHeader, error: DEEError, address: ReplyAddress, _ out: inout Batch
    ) {
        var fields = ["commandId", id, "type", header.type ?? "", "error", error.code.rawValue, "message", error.message]
        if let f = error.field { fields += ["field", f] }
        out.commands.append(["XADD", keys.rejected, "MAXLEN", "~", String(config.rejectedMaxLen), "*"] + fields)
        if let r = address.command(.error(error), maxLen: config.replyMaxLen) { out.commands.append(r) }
        logger.debug("rejected a command", metadata: ["stream.entry_id": "\(id)", "error": "\(error)"])
    }

    private func reply(repeatOf stored: String, fingerprint: String, address: ReplyAddress, _ out: inout Batch) {
        guard let (fp, outcome) = Outcome.parseRecord(stored) else { return }
        if fp != fingerprint {
            send(.error(Self.requestIdReused(address.requestId)), address, &out)
        } else {
            send(outcome, address, &out)
        }
    }

    static func requestIdReused(_ rid: String) -> DEEError {
        DEEError.badRequest(
            "requestId", "\(rid) was already used for a different command (another type or other arguments)")
    }

    private func send(_ outcome: Outcome, _ address: ReplyAddress, _ out: inout Batch) {
        if let c = address.command(outcome, maxLen: config.replyMaxLen) { out.commands.append(c) }
    }
}

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

    /// Creates the consumer group (from the stream's start, so commands sent before the first start run).
    func prepare(_ redis: RedisConnection) throws {
        let reply = try redis.send(["XGROUP", "CREATE", keys.commands, config.group, "0", "MKSTREAM"])
        if case .error(let e) = reply, !e.hasPrefix("BUSYGROUP") { throw RedisError(.server, e) }
    }

    /// Trims the ingress stream below the oldest entry still pending in the group (or, with none pending, below
    /// the last one delivered): never an entry a consumer may still need (SPEC 9). Returns the MINID used.
    @discardableResult
    func trimIngress(_ redis: RedisConnection) throws -> String? {
        let replies = try redis.pipeline([
            ["XPENDING", keys.commands, config.group], ["XINFO", "GROUPS", keys.commands],
        ])
        var floor: String?
        if let summary = replies[0].array, summary.count >= 2, let oldest = summary[1].string {
            floor = oldest
        } else if let groups = replies[1].array {
            for group in groups {
                let info = group.pairs
                if info["name"] == config.group { floor = info["last-delivered-id"] }
            }
        }
        guard let floor, floor != "0-0" else { return nil }
        try redis.call(["XTRIM", keys.commands, "MINID", floor])
        return floor
    }

    enum Source { case pending, claimed, new }

    /// Reads one batch and handles it. `source` picks the consumer's own pending entries (after a restart),
    /// entries claimed from a dead consumer, or new ones. Returns how many entries it handled.
    func step(_ redis: RedisConnection, source: Source) throws -> Int {
        let batch: [(id: String, fields: [(String, String)])]
        switch source {
        case .new:
            let reply = try redis.call([
                "XREADGROUP", "GROUP", config.group, config.consumer, "COUNT", String(config.readCount), "BLOCK",
                String(config.blockMilliseconds), "STREAMS", keys.commands, ">",
            ])
            batch = streamBatch(reply)
        case .pending:
            let reply = try redis.call([
                "XREADGROUP", "GROUP", config.group, config.consumer, "COUNT", String(config.readCount), "STREAMS",
                keys.commands, "0",
            ])
            batch = streamBatch(reply)
        case .claimed:
            let reply = try redis.call([
                "XAUTOCLAIM", keys.commands, config.group, config.consumer, String(config.claimIdleMilliseconds),
                "0-0", "COUNT", String(config.readCount),
            ])
            batch = reply.array.map { $0.count > 1 ? [RESPValue].entries($0[1]) : [] } ?? []
        }
        if batch.isEmpty { return 0 }
        var deliveries: [String: Int] = [:]
        if source != .new {
            let reply = try redis.call([
                "XPENDING", keys.commands, config.group, batch.first!.id, batch.last!.id, String(batch.count + 16),
            ])
            for item in reply.array ?? [] {
                if let a = item.array, a.count >= 4, let id = a[0].string, let n = a[3].int { deliveries[id] = n }
            }
        }
        var acks: [String] = []
        var out = Batch()
        for entry in batch {
            if entry.fields.isEmpty {
                // Deleted from the stream while pending: nothing to do but acknowledge.
                acks.append(entry.id)
                continue
            }
            if let n = deliveries[entry.id], n > config.maxDeliveries {
                deadletter(entry, reason: "delivered \(n) times", redis)
                acks.append(entry.id)
                continue
            }
            try route(entry, &out, redis)
            acks.append(entry.id)
        }
        // One round trip: every inbox copy, reply and rejection of the batch, then the acknowledgement.
        let replies = try redis.pipeline(out.commands + [["XACK", keys.commands, config.group] + acks])
        for reply in replies.dropLast() {
            // An inbox that already has this id (or a later one) was routed to before: harmless.
            if case .error(let e) = reply, !e.contains("equal or smaller") { throw RedisError(.server, e) }
        }
        if case .error(let e) = replies.last! { throw RedisError(.server, e) }
        return batch.count
    }

    private func streamBatch(_ reply: RESPValue) -> [(id: String, fields: [(String, String)])] {
        guard let streams = reply.array, let first = streams.first?.array, first.count == 2 else { return [] }
        return [RESPValue].entries(first[1])
    }

    private func deadletter(_ entry: (id: String, fields: [(String, String)]), reason: String, _ redis: RedisConnection) {
        let original = JSONValue.object(Dictionary(entry.fields.map { ($0.0, JSONValue.string($0.1)) }, uniquingKeysWith: { a, _ in a }))
        _ = try? redis.send([
            "XADD", keys.deadletter, "MAXLEN", "~", String(config.rejectedMaxLen), "*", "commandId", entry.id,
            "error", reason, "entry", original.canonical,
        ])
        logger.warning("poison message moved to deadletter", metadata: ["stream.entry_id": "\(entry.id)", "reason": "\(reason)"])
    }

    /// What a batch writes at its end, in one pipeline; and the latest plan versions it has looked up.
    struct Batch {
        var commands: [[String]] = []
        var latest: [String: Int] = [:]
    }

    /// Validates, answers or forwards one ingress entry, adding its writes to the batch.
    func route(_ entry: (id: String, fields: [(String, String)]), _ out: inout Batch, _ redis: RedisConnection) throws {
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
        guard EntryID(entry.id) != nil else { return }
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
        for p in targets {
            out.commands.append(["XADD", keys.partition(p).inbox, entry.id] + fields)
        }
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
